#!/usr/bin/python3
"""A back-end app for baton's migrate mode in plain Python (stdlib only).

It registers with the local `baton agent` for one or more VIP:port, then
receives each migrated client connection as a descriptor (SCM_RIGHTS) with a
JSON header, and serves HTTP/1.1 (keep-alive) on it. The client's first
request is already in the socket's receive queue: the server just reads.

The wire format is the agent's app socket (docs/agent.md, "The app
socket"): every message, both ways, is a u32 big-endian length followed by
that many bytes of UTF-8 JSON; a `connection` message carries one
descriptor on its first byte.

    /usr/bin/python3 examples/python/migrated_server.py \
        --socket /run/baton/agent.sock --vip 198.19.0.1:8080 --vip '[2001:db8:ffff::1]:8080'

A uid other than root may register only for a VIP the agent's
`--app VIP:PORT=UID` names it under. Answers every request with
"python <path> migration <id>\\n"; GET /size/<n> answers n bytes of 'x'.
"""

import argparse
import json
import socket
import struct
import sys
import threading

MAX_MESSAGE_BYTES = 64 * 1024  # control/agent/reply.ts MAX_MESSAGE_BYTES
MAX_HEAD_BYTES = 64 * 1024


def log(**event):
    sys.stderr.write(json.dumps(event) + "\n")
    sys.stderr.flush()


class AgentReader:
    """Length-prefixed JSON messages and the descriptors sent with them, in arrival order."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.fds = []

    def next(self):
        """The next message and, for a `connection`, its descriptor; (None, None) at EOF."""
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">I", self.buf[:4])
                if n > MAX_MESSAGE_BYTES:
                    raise ValueError(f"message length {n} exceeds {MAX_MESSAGE_BYTES}")
                if len(self.buf) >= 4 + n:
                    msg = json.loads(self.buf[4 : 4 + n].decode("utf-8"))
                    self.buf = self.buf[4 + n :]
                    fd = None
                    if isinstance(msg, dict) and msg.get("type") == "connection":
                        if not self.fds:
                            raise ValueError("a connection header arrived without a descriptor")
                        fd = self.fds.pop(0)
                    return msg, fd
            data, fds, _flags, _addr = socket.recv_fds(self.sock, 64 * 1024, 16)
            # Descriptors arrive with the first byte of their message: queue them.
            self.fds.extend(fds)
            if not data:
                return None, None
            self.buf += data


def send_message(sock, value):
    body = json.dumps(value).encode("utf-8")
    sock.sendall(struct.pack(">I", len(body)) + body)


def serve_http(conn, header):
    """HTTP/1.1 on one migrated connection until the client closes or asks to."""
    mid = header["migrationId"]
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                if len(buf) > MAX_HEAD_BYTES:
                    conn.sendall(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    return
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                return
            method, path, version = parts
            fields = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
            length = int(fields.get("content-length", "0") or "0")
            while len(buf) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            buf = buf[length:]  # the request body is not used
            close = fields.get("connection", "").lower() == "close" or version == "HTTP/1.0"
            if path.startswith("/size/") and path[6:].isdigit():
                body = b"x" * int(path[6:])
            else:
                body = f"python {path} migration {mid}\n".encode()
            head_out = f"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {len(body)}\r\n"
            if close:
                head_out += "connection: close\r\n"
            conn.sendall(head_out.encode() + b"\r\n" + (b"" if method == "HEAD" else body))
            if close:
                return
    except OSError as e:
        log(event="connection_error", migrationId=mid, error=str(e))
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--socket", default="/run/baton/agent.sock", help="the agent's app socket")
    ap.add_argument("--vip", action="append", required=True, help="ip:port or [ipv6]:port to serve (repeatable)")
    args = ap.parse_args()

    agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        agent.connect(args.socket)
    except OSError as e:
        log(event="agent_unreachable", socket=args.socket, error=str(e))
        return 1
    reader = AgentReader(agent)
    for vip in args.vip:
        send_message(agent, {"type": "register", "vip": vip})
        reply, _ = reader.next()
        if not reply or reply.get("type") != "registered":
            log(event="register_refused", vip=vip, reply=reply)
            return 1
        log(event="registered", vip=reply["vip"])

    workers = []
    while True:
        msg, fd = reader.next()
        if msg is None:
            # No new connections; the ones handed over are ours and are served to their end.
            log(event="agent_closed", serving=sum(t.is_alive() for t in workers))
            for t in workers:
                t.join()
            return 0
        if fd is None:
            log(event="unexpected_message", message=msg)
            continue
        # family/type are read from the descriptor (SO_DOMAIN, SO_TYPE).
        conn = socket.socket(fileno=fd)
        log(event="connection", migrationId=msg["migrationId"], client=msg["client"], queuedBytes=msg["queuedBytes"])
        workers = [t for t in workers if t.is_alive()]
        t = threading.Thread(target=serve_http, args=(conn, msg), daemon=True)
        t.start()
        workers.append(t)


if __name__ == "__main__":
    sys.exit(main())
