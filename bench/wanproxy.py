#!/usr/bin/env python3
"""A delaying TCP proxy that stands for a long network path (this kernel has no netem).

  wanproxy.py --listen PORT --to HOST:PORT [--rtt MS] [--window BYTES] [--rate BITS/S]
              [--ready FILE]
  wanproxy.py selftest-echo PORT         a plain echo server (for the bench's checks)
  wanproxy.py probe HOST:PORT N BYTES    N sequential 1-byte round trips on one connection,
                                         then one stream of BYTES through the echo: prints
                                         "connect_s rtts_s stream_bytes_per_s"

Model, for every connection and each direction separately:
- latency: the bytes read from one side are written to the other side RTT/2 after they
  arrived (a timer per chunk, so transfers are pipelined: throughput is kept and every
  request/response round trip pays the full RTT);
- window: a chunk counts as "in flight" from its arrival until RTT later (RTT/2 there, the
  acknowledgement RTT/2 back); the proxy stops reading a direction while WINDOW bytes are in
  flight, so one connection tops out at WINDOW/RTT, like one TCP stream on a long path;
- link rate: one token bucket shared by all connections and both directions (a chunk is
  released no earlier than the bucket allows, burst 1 ms worth); 0 means no cap.
TLS and everything else passes through untouched. Single process, asyncio protocols.
"""

import asyncio
import collections
import os
import socket
import sys
import time

READ_MAX = 1024 * 1024


class Link:
    """The shared rate cap: earliest time the next byte may leave."""

    def __init__(self, rate_bps: float):
        self.rate = rate_bps / 8.0  # bytes per second
        self.next_free = 0.0

    def release_at(self, t: float, n: int) -> float:
        if self.rate <= 0:
            return t
        start = max(t, self.next_free - 0.001)  # 1 ms of burst
        self.next_free = max(self.next_free, start) + n / self.rate
        return max(t, self.next_free - 0.001)


class Half(asyncio.BufferedProtocol):
    """One side's socket. data_received queues the bytes for the peer side."""

    def __init__(self, pipe: "Pipe", name: str):
        self.pipe = pipe
        self.name = name
        self.transport = None
        self.peer = None  # the other Half
        self.inflight = 0
        self.window_full = False
        self.peer_full = False  # peer's write buffer is above its high-water mark
        self.paused = False
        self.eof = False
        self.eof_sent = False
        self.closed = False
        self.pending = []  # data waiting for the peer transport to exist
        self.outq = collections.deque()
        self.view = memoryview(bytearray(READ_MAX))
        self.creditq = collections.deque()
        self.out_timer = None
        self.credit_timer = None

    def connection_made(self, transport):
        self.transport = transport
        transport.set_write_buffer_limits(high=4 << 20, low=1 << 20)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _update_reading(self):
        want_pause = self.window_full or self.peer_full
        if want_pause and not self.paused and self.transport and not self.closed:
            self.paused = True
            self.transport.pause_reading()
        elif not want_pause and self.paused and self.transport and not self.closed:
            self.paused = False
            self.transport.resume_reading()

    def get_buffer(self, sizehint):
        return self.view

    def buffer_updated(self, n):
        self.data_received(self.view[:n].tobytes())

    def data_received(self, data):
        p = self.pipe
        n = len(data)
        if p.delay <= 0 and p.link.rate <= 0:
            self._deliver(data)
            return
        loop = p.loop
        now = loop.time()
        t = p.link.release_at(now + p.delay, n)
        # FIFO queues with one timer each: equal deadlines must never reorder bytes
        self.outq.append((t, data))
        if self.out_timer is None:
            self.out_timer = loop.call_at(t, self._release)
        self.inflight += n
        self.creditq.append((max(t, now + 2 * p.delay) if p.window > 0 else t, n))
        if self.credit_timer is None:
            self.credit_timer = loop.call_at(self.creditq[0][0], self._credit)
        if p.window > 0 and self.inflight >= p.window:
            self.window_full = True
            self._update_reading()

    def _release(self):
        self.out_timer = None
        q = self.outq
        lim = self.pipe.loop.time() + 0.0005
        while q and q[0][0] <= lim:
            self._deliver(q.popleft()[1])
        if q:
            self.out_timer = self.pipe.loop.call_at(q[0][0], self._release)

    def _credit(self):
        self.credit_timer = None
        q = self.creditq
        lim = self.pipe.loop.time() + 0.0005
        while q and q[0][0] <= lim:
            self.inflight -= q.popleft()[1]
        if q:
            self.credit_timer = self.pipe.loop.call_at(q[0][0], self._credit)
        if self.window_full and self.inflight < self.pipe.window:
            self.window_full = False
            self._update_reading()
        if self.eof and self.inflight == 0:
            self._forward_eof()

    def _deliver(self, data):
        peer = self.peer
        if peer is None or peer.transport is None:
            self.pending.append(data)
            return
        if peer.closed:
            return
        peer.transport.write(data)

    def flush_pending(self):
        for d in self.pending:
            self.peer.transport.write(d)
        self.pending.clear()

    def pause_writing(self):  # our write buffer is full: stop reading the other side
        if self.peer is not None:
            self.peer.peer_full = True
            self.peer._update_reading()

    def resume_writing(self):
        if self.peer is not None:
            self.peer.peer_full = False
            self.peer._update_reading()

    def eof_received(self):
        self.eof = True
        if self.inflight == 0:
            self.pipe.loop.call_soon(self._forward_eof)
        return True  # keep the transport half open

    def _forward_eof(self):
        if self.eof_sent:
            return
        self.eof_sent = True
        # delay the FIN like the data (it was queued after it, so it leaves after it)
        def fin():
            peer = self.peer
            if peer is not None and peer.transport is not None and not peer.closed:
                if peer.transport.can_write_eof():
                    peer.transport.write_eof()
                if peer.eof:
                    peer.transport.close()
        if self.pipe.delay > 0:
            self.pipe.loop.call_later(self.pipe.delay, fin)
        else:
            fin()

    def connection_lost(self, exc):
        self.closed = True
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.closed:
            # let delayed data drain first
            delay = self.pipe.delay if self.pipe.delay > 0 else 0
            self.pipe.loop.call_later(delay + 0.001, peer.transport.close)


class Pipe:
    def __init__(self, loop, delay, window, link):
        self.loop, self.delay, self.window, self.link = loop, delay, window, link


async def serve(listen_port: int, to_host: str, to_port: int, rtt_ms: float, window: int,
                rate_bps: float, ready: str) -> None:
    loop = asyncio.get_running_loop()
    link = Link(rate_bps)

    def factory():
        pipe = Pipe(loop, rtt_ms / 2000.0, window, link)
        client = Half(pipe, "client")

        async def connect_upstream():
            try:
                _t, upstream = await loop.create_connection(
                    lambda: Half(pipe, "server"), to_host, to_port)
            except OSError:
                if client.transport:
                    client.transport.close()
                return
            upstream.peer, client.peer = client, upstream
            # the SYN also crosses the path: hold the first bytes' delivery as usual;
            # client->server data that arrived meanwhile was queued in client.pending
            client.flush_pending()
            upstream.flush_pending()

        orig = client.connection_made

        def made(transport):
            orig(transport)
            loop.create_task(connect_upstream())
        client.connection_made = made
        return client

    # the connect itself: one RTT before the client sees the connection accepted is not
    # modelled by the kernel's accept; clients pay it with their first request's RTT.
    server = await loop.create_server(factory, "127.0.0.1", listen_port, backlog=1024,
                                      reuse_address=True)
    if ready:
        with open(ready, "w") as f:
            f.write(f"{os.getpid()}\n")
    async with server:
        await server.serve_forever()


async def echo_server(port: int) -> None:
    class Echo(asyncio.Protocol):
        def connection_made(self, t):
            self.t = t
            t.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def data_received(self, d):
            self.t.write(d)

        def eof_received(self):
            return False

    loop = asyncio.get_running_loop()
    srv = await loop.create_server(Echo, "127.0.0.1", port, reuse_address=True)
    async with srv:
        await srv.serve_forever()


def probe(hostport: str, n: int, nbytes: int) -> None:
    host, port = hostport.rsplit(":", 1)
    t0 = time.perf_counter()
    s = socket.create_connection((host, int(port)))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # first round trip includes the proxy's upstream connect
    s.sendall(b"x")
    s.recv(1)
    t1 = time.perf_counter()
    for _ in range(n):
        s.sendall(b"x")
        if not s.recv(1):
            raise SystemExit("probe: connection closed")
    t2 = time.perf_counter()
    # one stream through the echo: a writer thread sends, we read it back
    import threading
    block = b"\0" * (1 << 20)

    def writer():
        left = nbytes
        while left > 0:
            k = min(left, len(block))
            s.sendall(block[:k])
            left -= k
    th = threading.Thread(target=writer, daemon=True)
    t3 = time.perf_counter()
    th.start()
    got = 0
    first = None
    while got < nbytes:
        d = s.recv(1 << 20)
        if not d:
            break
        if first is None:
            first = time.perf_counter()
        got += len(d)
    t4 = time.perf_counter()
    th.join()
    s.close()
    # throughput over the steady part (from the first byte back), so the one RTT of
    # pipeline fill is not counted as slowness
    rate = got / max(t4 - (first or t3), 1e-9)
    print(f"{t1 - t0:.4f} {t2 - t1:.4f} {rate:.0f}")


def main(argv):
    if argv and argv[0] == "selftest-echo":
        asyncio.run(echo_server(int(argv[1])))
        return 0
    if argv and argv[0] == "probe":
        probe(argv[1], int(argv[2]), int(argv[3]))
        return 0
    import argparse
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--to", required=True)
    ap.add_argument("--rtt", type=float, default=30.0, help="round-trip time in ms")
    ap.add_argument("--window", type=int, default=4 << 20, help="bytes in flight per direction per connection (0: no cap)")
    ap.add_argument("--rate", type=float, default=0, help="link rate in bit/s, all connections (0: no cap)")
    ap.add_argument("--ready", default="", help="write the pid to this file once listening")
    a = ap.parse_args(argv)
    host, port = a.to.rsplit(":", 1)
    try:
        import uvloop  # noqa: F401  (faster if present)
        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(serve(a.listen, host, int(port), a.rtt, a.window, a.rate, a.ready))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
