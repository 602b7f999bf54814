//! oidc-agent as the last token source, end to end with Debian's `oidc-agent-cli`: a private
//! `oidc-agent`, an account registered by `oidc-gen` against the real OpenID provider
//! (device flow, the provider's confidential client, approved headlessly), then `cta-data`
//! with a profile whose only token source is `agent_account`, against the dCache door double
//! that accepts exactly that provider's JWTs.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command as StdCommand, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{assert_ok, err, out, World, AUTH};
use ctadata_testsupport::OidcOptions;

const NOT_INSTALLED: &str =
    "oidc-agent-cli is not installed: apt-get install oidc-agent-cli (tests/run-all.sh does it)";

/// The encryption password of the account configuration; given to oidc-gen in the
/// environment (`--pw-env`), never on its command line.
const ENCRYPTION_PW: &str = "agent-test-encryption-pw";

/// Runs `oidc-agent` in the foreground under a shell that kills it when its standard input
/// closes: the handle's drop closes it, and so does the death of the test process, so no
/// agent outlives the test. The shell prints the agent's pid first.
const WATCHDOG: &str = r#"oidc-agent --console --log-stderr --socket-path="$1" >>"$2" 2>&1 </dev/null &
echo "$!"
read -r _
kill "$!" 2>/dev/null
wait"#;

/// A private `oidc-agent`: its own `HOME`, `OIDC_CONFIG_DIR`, `TMPDIR` and socket, all under
/// `dir`.
struct Agent {
    dir: PathBuf,
    watchdog: Option<Child>,
    stdin: Option<ChildStdin>,
    pid: u32,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        for d in ["home", "config", "tmp"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let mut child = StdCommand::new("sh")
            .args(["-c", WATCHDOG, "sh"])
            .arg(dir.join("sock"))
            .arg(dir.join("agent.log"))
            .env_clear()
            .envs(Self::env_of(dir))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let pid = first.trim().parse().expect("the agent's pid");
        let mut agent = Agent {
            dir: dir.to_path_buf(),
            watchdog: Some(child),
            stdin,
            pid,
        };
        // Ready once `oidc-agent --status` reaches it over the socket.
        let started = Instant::now();
        loop {
            if let Some(s) = agent.watchdog.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "oidc-agent exited ({s}); {NOT_INSTALLED}?\nits log:\n{}",
                    agent.log()
                );
            }
            let status = agent
                .tool("oidc-agent")
                .arg("--status")
                .stdin(Stdio::null())
                .output()
                .expect(NOT_INSTALLED);
            if status.status.success() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "oidc-agent did not answer on its socket within 20 s: {}\nits log:\n{}",
                err(&status),
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        agent
    }

    /// The environment of the agent and its tools (and of `cta-data`, which runs
    /// `oidc-token`).
    fn env_of(dir: &Path) -> Vec<(&'static str, std::ffi::OsString)> {
        vec![
            ("PATH", std::env::var_os("PATH").unwrap_or_default()),
            ("HOME", dir.join("home").into()),
            ("OIDC_CONFIG_DIR", dir.join("config").into()),
            ("OIDC_SOCK", dir.join("sock").into()),
            ("TMPDIR", dir.join("tmp").into()),
        ]
    }

    fn env(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        Self::env_of(&self.dir)
    }

    /// `program` (oidc-gen, oidc-token, ...) talking to this agent only.
    fn tool(&self, program: &str) -> StdCommand {
        let mut c = StdCommand::new(program);
        c.env_clear().envs(self.env());
        c
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// `oidc-gen` registers `account` at the provider with the device flow and the
    /// provider's confidential client; `user` approves the code it shows. Returns its exit
    /// status and everything it printed.
    fn generate(&self, w: &World, account: &str, user: &str) -> (ExitStatus, String) {
        let mut child = self
            .tool("oidc-gen")
            .env("OIDC_ENCRYPTION_PW", ENCRYPTION_PW)
            .args(["--flow=device", "--pw-env", "--no-url-call"])
            .args(["--confirm-default", "--prompt=none"])
            .arg(format!("--iss={}", w.idp.issuer()))
            .arg(format!("--client-id={}", w.idp.client_id()))
            .arg(format!("--client-secret={}", w.idp.client_secret()))
            .arg("--scope=openid offline_access")
            .arg(account)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect(NOT_INSTALLED);
        // oidc-gen 4.2.6 prints "And enter the code: ABCD-EFGH" on stderr; either stream is
        // searched.
        let (tx, rx) = mpsc::channel();
        let readers: Vec<_> = [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ]
        .into_iter()
        .map(|stream| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut all = String::new();
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some((_, code)) = line.split_once("enter the code:") {
                        let _ = tx.send(code.trim().to_string());
                    }
                    all.push_str(&line);
                    all.push('\n');
                }
                all
            })
        })
        .collect();
        drop(tx);
        let approved = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(code) => w.idp.approve(&code, user).map_err(|e| e.to_string()),
            Err(_) => Err("oidc-gen showed no user code within 30 s".to_string()),
        };
        let started = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if approved.is_err() || started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let printed: String = readers.into_iter().map(|r| r.join().unwrap()).collect();
        if let Err(e) = approved {
            panic!("approving oidc-gen's device code failed: {e}\noidc-gen printed:\n{printed}");
        }
        (status, printed)
    }

    /// Stops the agent and checks that none of its processes is left.
    fn stop(mut self) {
        self.shutdown();
        let sock = self.dir.join("sock").display().to_string();
        let started = Instant::now();
        loop {
            let left = processes_mentioning(&sock);
            if left.is_empty() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "oidc-agent processes left after the stop: {left:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn shutdown(&mut self) {
        drop(self.stdin.take());
        let Some(mut watchdog) = self.watchdog.take() else {
            return;
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = watchdog.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = StdCommand::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .status();
        let _ = watchdog.kill();
        let _ = watchdog.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Pids of the running processes whose command line contains `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

/// A real `/tmp/bt_u<uid>` would be a token source before oidc-agent: the tests need it absent.
fn assert_no_discovery_file() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .expect("the uid from /proc/self/status");
    let f = format!("/tmp/bt_u{uid}");
    assert!(
        !Path::new(&f).exists(),
        "{f} exists on this machine: it would be used as the token before oidc-agent; remove it to run this test"
    );
}

/// The provider, the door and a private agent; profile `door` has `agent_account = account`
/// as its only token source (no issuer, so no login session).
fn world_with_agent(account: &str) -> (World, Agent) {
    assert_no_discovery_file();
    let w = World::new(OidcOptions::default());
    // XDG_RUNTIME_DIR exists and is empty: no bt_u<uid> there either.
    std::fs::create_dir_all(w.path("home/run")).unwrap();
    w.write_profile(&format!("agent_account = \"{account}\"\n"));
    let agent = Agent::start(&w.path("agent"));
    (w, agent)
}

/// `cta-data` with the agent's socket; `World::cmd` clears the environment, so
/// CTADATA_TOKEN, BEARER_TOKEN and BEARER_TOKEN_FILE are unset.
fn cta_data(w: &World, agent: &Agent, args: &[&str]) -> Output {
    w.cmd()
        .envs(agent.env())
        // The agent's HOME and TMPDIR are its own; cta-data keeps the world's.
        .env("HOME", w.path("home"))
        .env_remove("TMPDIR")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn an_oidc_agent_account_is_the_token_source() {
    let account = "ctadata-test";
    let (w, agent) = world_with_agent(account);

    let (status, printed) = agent.generate(&w, account, "alice");
    assert!(
        status.success(),
        "oidc-gen failed ({status}):\n{printed}\nagent log:\n{}\nprovider log:\n{}",
        agent.log(),
        w.idp.log()
    );
    assert!(
        agent.dir.join("config").join(account).is_file(),
        "no account configuration written:\n{printed}"
    );
    assert!(w.idp.stats().device_grants >= 1);

    let o = agent
        .tool("oidc-token")
        .arg(account)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ok(&o);
    let token = out(&o).trim().to_string();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token:?}");

    let o = cta_data(&w, &agent, &["list", "cta"]);
    assert_ok(&o);
    assert_eq!(out(&o), "hello.txt\n");

    let o = cta_data(&w, &agent, &["token", "status"]);
    assert_ok(&o);
    let s = out(&o);
    assert!(
        s.contains(&format!("used:    oidc-agent account '{account}'")),
        "{s}"
    );
    assert!(s.contains("subject: alice"), "{s}");
    assert!(!s.contains(&token), "token status must not show the token");
    assert!(
        !w.path("home/.config/cta-data/profiles/door/session.json")
            .exists(),
        "no login session was made"
    );

    agent.stop();
}

#[test]
fn an_account_unknown_to_oidc_agent_is_an_auth_error_naming_it() {
    let account = "no-such-account";
    let (w, agent) = world_with_agent(account);

    let o = agent
        .tool("oidc-token")
        .arg(account)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !o.status.success() && out(&o).trim().is_empty(),
        "oidc-token {account}: {:?} {} {}",
        o.status,
        out(&o),
        err(&o)
    );

    let o = cta_data(&w, &agent, &["list", "cta"]);
    assert_eq!(o.status.code(), Some(AUTH), "{}", err(&o));
    let e = err(&o);
    for s in [
        "tried, in order",
        "CTADATA_TOKEN",
        "BEARER_TOKEN",
        "BEARER_TOKEN_FILE",
        "bt_u",
        &format!("oidc-agent account '{account}'"),
    ] {
        assert!(e.contains(s), "{s} missing from: {e}");
    }
    // oidc-token's own complaint is passed on as a warning.
    assert!(e.contains("oidc-token failed"), "{e}");
    assert_eq!(
        w.door.stats().door_requests,
        0,
        "no request without a token"
    );

    agent.stop();
}
