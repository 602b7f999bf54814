# Sourced by the bench scripts (needs HERE, the bench directory):
#
#   die MSG / log MSG / usage   errors, progress (stderr) and the script's header as help
#   start_nginx SRV NGDIR BODYDIR [ACCESS_LOG]
#     a private nginx (dav-ext) serving SRV over WebDAV on 127.0.0.1; config, pid and error
#     log in NGDIR; upload bodies in BODYDIR; with ACCESS_LOG, one line per request:
#     "METHOD STATUS BODY_BYTES_SENT URI". Sets URL (http://127.0.0.1:PORT) and NGINX_PID.
#     With NGINX_TLS_CERT and NGINX_TLS_KEY set (PEM files), the same server also listens
#     with TLS on a second port and SURL is set (https://127.0.0.1:PORT2).
#   make_test_ca DIR
#     a throwaway CA (DIR/ca.pem, DIR/ca.key, hashed copy in DIR/capath/) and a server
#     certificate for 127.0.0.1 and localhost (DIR/server.pem, DIR/server.key), by openssl.
#   stop_nginx
#     stops it (graceful, then TERM).

LIB="$HERE/benchlib.py"
# the interpreter itself, not a version manager's shim (pyenv's costs ~0.3 s a call)
PY3=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || PY3=python3
python3() { "$PY3" "$@"; }

die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 2; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

DAV_EXT=/usr/lib/nginx/modules/ngx_http_dav_ext_module.so

start_nginx() {
    local srv=$1 ng=$2 body=$3 alog=${4:-} port user_line="" log_line="access_log off;"
    local tls_lines="" sport
    port=$(python3 "$LIB" freeport)
    URL=http://127.0.0.1:$port
    SURL=""
    if [[ -n ${NGINX_TLS_CERT:-} ]]; then
        sport=$(python3 "$LIB" freeport)
        SURL=https://127.0.0.1:$sport
        tls_lines="listen 127.0.0.1:$sport ssl;
        ssl_certificate $NGINX_TLS_CERT;
        ssl_certificate_key $NGINX_TLS_KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;"
    fi
    mkdir -p "$ng/tmp" "$body"
    [[ $EUID -eq 0 ]] && user_line="user root root;"
    if [[ -n $alog ]]; then
        log_line="log_format sent '\$request_method \$status \$body_bytes_sent \$uri';
    access_log $alog sent;"
    fi
    cat >"$ng/nginx.conf" <<EOF
load_module $DAV_EXT;
$user_line
worker_processes auto;
pid $ng/nginx.pid;
error_log $ng/error.log warn;
events { worker_connections 4096; }
http {
    $log_line
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    default_type application/octet-stream;
    client_body_temp_path $body;
    proxy_temp_path $ng/tmp/proxy;
    fastcgi_temp_path $ng/tmp/fastcgi;
    uwsgi_temp_path $ng/tmp/uwsgi;
    scgi_temp_path $ng/tmp/scgi;
    server {
        listen 127.0.0.1:$port;
        $tls_lines
        root $srv;
        location / {
            if (\$request_method = MKCOL) { rewrite ^(.*[^/])\$ \$1/ break; }
            dav_methods PUT DELETE MKCOL COPY MOVE;
            dav_ext_methods PROPFIND OPTIONS;
            create_full_put_path on;
            client_max_body_size 0;
            dav_access user:rw group:rw all:r;
        }
    }
}
EOF
    log "starting nginx on $URL"
    nginx -e "$ng/error.log" -c "$ng/nginx.conf" -p "$ng/" >&2 || { cat "$ng/error.log" >&2 || true; die "nginx did not start"; }
    for _ in $(seq 50); do [[ -s $ng/nginx.pid ]] && break; sleep 0.1; done
    NGINX_PID=$(cat "$ng/nginx.pid" 2>/dev/null) || die "nginx wrote no pid file"
    for _ in $(seq 50); do
        curl -s -o /dev/null -X OPTIONS "$URL/" && break
        sleep 0.1
    done
    curl -sSf -o /dev/null -X PROPFIND -H 'Depth: 0' "$URL/" || die "nginx does not answer PROPFIND on $URL"
}

make_test_ca() {
    local d=$1
    mkdir -p "$d/capath"
    (
        cd "$d"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
            -subj "/CN=cta-data bench throwaway CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost"
        printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
            -days 2 -extfile server.ext
        cp ca.pem "capath/$(openssl x509 -subject_hash -noout -in ca.pem).0"
    ) >"$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; die "openssl could not make the test CA"; }
}

stop_nginx() {
    if [[ -n ${NGINX_PID:-} ]] && kill -0 "$NGINX_PID" 2>/dev/null; then
        kill -QUIT "$NGINX_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
        kill -TERM "$NGINX_PID" 2>/dev/null || true
    fi
}
