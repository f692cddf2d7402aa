#!/usr/bin/python3
"""SMTP sink for rcptwall's tests: accepts every message and stores it.

It stands in for a remote mail exchanger. Whatever a client sends is kept,
per connection, so a test can prove what did and did not arrive:

  STORE/log.jsonl               one JSON object per line, in arrival order:
                                connect, mail, rcpt, data_start, message,
                                starttls, close (with how the connection
                                ended: quit, eof, reset, timeout, error,
                                shutdown; bytes read; content_bytes, the
                                bytes read after 354 or inside BDAT; and
                                pipelined, commands that arrived with more
                                commands already waiting behind them;
                                open_txn, the transaction the connection
                                ended in, with its content_bytes). mail,
                                rcpt, data_start and message events carry
                                txn, the transaction's number in its
                                connection.
  STORE/conn-NNNNNN/raw.bin     every byte read from the client, in order
                                (after TLS decryption once TLS is on: the
                                SMTP stream as the server saw it)
  STORE/conn-NNNNNN/replies.txt every reply the sink sent
  STORE/conn-NNNNNN/msg-K.eml   message K of the connection, content as
                                received (dot-unstuffed for DATA, chunks
                                concatenated for BDAT)

ESMTP: PIPELINING, SIZE, 8BITMIME, SMTPUTF8, CHUNKING (BDAT), STARTTLS when
a certificate is given; implicit TLS on extra ports when asked. Replies are
always positive for well-formed commands: the sink never judges addresses.

Run it with Debian's interpreter (standard library only):

  /usr/bin/python3 tests/lib/smtp_sink.py --listen 198.51.100.21:25 \
      --listen [2001:db8:25::21]:25 --store /tmp/x/mxa \
      [--tls-cert C --tls-key K [--implicit-tls-port 465]] [--ready-file F]

SIGTERM or SIGINT stops it (exit 0), closing open connections first.
"""

import argparse
import asyncio
import hashlib
import json
import os
import signal
import ssl
import sys
import time

# Command lines longer than this are refused and skipped (RFC 5321 says 512
# octets; real servers take more, and the sink must not be the reason a
# long-line test fails).
MAX_COMMAND_LINE = 4096
READ_CHUNK = 65536
EXTENSIONS = ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "CHUNKING", "STARTTLS")


def now():
    return round(time.time(), 6)


def text(raw):
    """Wire bytes as printable JSON-safe text, never failing on bad UTF-8."""
    return raw.decode("utf-8", errors="backslashreplace")


def parse_path(arg):
    """Splits '<path> params' (or 'path params') into (address, params).

    Honours quoted local parts ("a>b"@x) and backslash escapes, so a '>'
    inside quotes does not end the path. Returns (None, '') when the
    argument has no usable path.
    """
    arg = arg.lstrip()
    if not arg.startswith("<"):
        addr, _, params = arg.partition(" ")
        return (addr or None), params.strip()
    quoted = escaped = False
    for i in range(1, len(arg)):
        c = arg[i]
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif c == ">" and not quoted:
            path = arg[1:i]
            if ":" in path and path.startswith("@"):  # source route: drop it
                path = path.split(":", 1)[1]
            return path, arg[i + 1:].strip()
    return None, ""


def header_value(message, name, limit=65536):
    """First header `name` of the message's header block (bounded), or ''."""
    head = message[:limit].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    want = name.lower().encode() + b":"
    for line in head.split(b"\n"):
        if line.lower().startswith(want):
            return text(line[len(want):].strip())
    return ""


class Store:
    """The sink's storage root: connection folders and the event log."""

    def __init__(self, root):
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.next_conn = 1
        self.log = open(os.path.join(root, "log.jsonl"), "a", buffering=1)

    def event(self, kind, **fields):
        rec = {"event": kind, "time": now()}
        rec.update(fields)
        self.log.write(json.dumps(rec, ensure_ascii=False) + "\n")

    def new_connection(self):
        cid = self.next_conn
        self.next_conn += 1
        folder = os.path.join(self.root, "conn-%06d" % cid)
        os.makedirs(folder, exist_ok=True)
        return cid, folder


class Connection:
    """One client connection: its files, counters and envelope state."""

    def __init__(self, store, cid, folder):
        self.store, self.cid, self.folder = store, cid, folder
        self.raw = open(os.path.join(folder, "raw.bin"), "wb", buffering=0)
        self.replies = open(os.path.join(folder, "replies.txt"), "wb", buffering=0)
        self.bytes_in = 0
        self.content_bytes = 0  # DATA/BDAT content bytes, across messages
        # Commands that arrived with more input already waiting behind them:
        # evidence that the client pipelined (RFC 2920).
        self.pipelined = 0
        self.messages = 0
        self.txn = 0  # transactions (accepted MAIL commands) so far
        self.reset_envelope()

    def reset_envelope(self):
        self.mail_from = None
        self.rcpts = []
        self.txn_content = 0  # content bytes of the open transaction

    def add_content(self, n):
        self.content_bytes += n
        self.txn_content += n

    def open_transaction(self):
        """The transaction a connection ended in, or None: shows whether
        any content of an unfinished message arrived."""
        if self.mail_from is None:
            return None
        return {"txn": self.txn, "mail_from": self.mail_from, "rcpts": self.rcpts,
                "content_bytes": self.txn_content}

    def event(self, kind, **fields):
        self.store.event(kind, conn=self.cid, **fields)

    def save_message(self, content, via):
        self.messages += 1
        name = "msg-%d.eml" % self.messages
        with open(os.path.join(self.folder, name), "wb") as f:
            f.write(content)
        self.event("message", txn=self.txn, msg=self.messages, file=os.path.join(self.folder, name),
                   via=via, mail_from=self.mail_from, rcpts=self.rcpts,
                   size=len(content), sha256=hashlib.sha256(content).hexdigest(),
                   subject=header_value(content, "Subject"),
                   message_id=header_value(content, "Message-ID"))

    def close(self):
        self.raw.close()
        self.replies.close()


class ClientGone(Exception):
    """The client closed or reset the connection; `how` says which."""

    def __init__(self, how):
        super().__init__(how)
        self.how = how


class Session:
    """The SMTP server side of one connection."""

    def __init__(self, cfg, conn, reader, writer, tls_on):
        self.cfg, self.conn = cfg, conn
        self.reader, self.writer = reader, writer
        self.tls_on = tls_on
        self.buf = bytearray()
        self.greeted = False
        self.chunks = None  # BDAT content collected so far, None outside BDAT
        self.last_input = time.monotonic()  # when the latest client bytes came in

    # ---- input -------------------------------------------------------

    async def fill(self):
        try:
            data = await asyncio.wait_for(self.reader.read(READ_CHUNK), self.cfg.timeout)
        except asyncio.TimeoutError:
            raise ClientGone("timeout")
        except (ConnectionResetError, BrokenPipeError):
            raise ClientGone("reset")
        except (ssl.SSLError, OSError):
            raise ClientGone("error")
        if not data:
            raise ClientGone("eof")
        self.last_input = time.monotonic()
        self.conn.raw.write(data)
        self.conn.bytes_in += len(data)
        self.buf += data

    async def read_line(self, limit):
        """Up to one line, at most `limit` bytes: (bytes, ended_with_lf)."""
        while True:
            nl = self.buf.find(b"\n", 0, limit)
            if nl >= 0:
                line = bytes(self.buf[:nl + 1])
                del self.buf[:nl + 1]
                return line, True
            if len(self.buf) >= limit:
                line = bytes(self.buf[:limit])
                del self.buf[:limit]
                return line, False
            await self.fill()

    async def read_exact(self, n):
        while len(self.buf) < n:
            await self.fill()
        chunk = bytes(self.buf[:n])
        del self.buf[:n]
        return chunk

    # ---- output ------------------------------------------------------

    async def reply(self, *lines):
        if self.cfg.reply_delay:
            # A reply leaves reply_delay after the bytes it answers came in:
            # the round trip to a remote server. Replies to one pipelined
            # group go out together, as they would over a real network.
            wait = self.last_input + self.cfg.reply_delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        out = b"".join(
            ("%s%s%s\r\n" % (l[:3], "-" if i < len(lines) - 1 else " ", l[4:])).encode()
            for i, l in enumerate(lines))
        self.conn.replies.write(out)
        try:
            self.writer.write(out)
            await self.writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            raise ClientGone("reset")
        except (ssl.SSLError, OSError):
            raise ClientGone("error")

    # ---- commands ----------------------------------------------------

    def extensions(self):
        ext = []
        for e in EXTENSIONS:
            if e in self.cfg.disabled:
                continue
            if e == "STARTTLS" and (self.tls_on or self.cfg.tls is None):
                continue
            ext.append("SIZE %d" % self.cfg.max_size if e == "SIZE" else e)
        return ext

    async def run(self):
        await self.reply("220 %s ESMTP rcptwall test sink" % self.cfg.hostname)
        while True:
            line, complete = await self.read_line(MAX_COMMAND_LINE)
            if not complete:
                await self.skip_long_line()
                await self.reply("500 5.5.2 line too long")
                continue
            if b"\n" in self.buf:
                self.conn.pipelined += 1
            verb, _, arg = text(line.rstrip(b"\r\n")).partition(" ")
            handler = getattr(self, "cmd_" + verb.upper(), None) if verb.isalpha() else None
            if handler is None:
                await self.reply("500 5.5.1 command unrecognized")
                continue
            if await handler(arg) == "quit":
                return

    async def skip_long_line(self):
        while True:
            _, complete = await self.read_line(MAX_COMMAND_LINE)
            if complete:
                return

    async def cmd_EHLO(self, arg):
        self.greeted = True
        self.conn.reset_envelope()
        await self.reply("250 %s greets %s" % (self.cfg.hostname, arg.strip() or "client"),
                         *["250 " + e for e in self.extensions()])

    async def cmd_HELO(self, arg):
        self.greeted = True
        self.conn.reset_envelope()
        await self.reply("250 %s" % self.cfg.hostname)

    async def cmd_MAIL(self, arg):
        if not arg.upper().startswith("FROM:"):
            return await self.reply("501 5.5.4 syntax: MAIL FROM:<address>")
        if self.conn.mail_from is not None:
            return await self.reply("503 5.5.1 nested MAIL command")
        addr, params = parse_path(arg[5:])
        if addr is None:
            return await self.reply("501 5.1.7 bad sender address syntax")
        self.conn.mail_from = addr
        self.conn.txn += 1
        self.conn.event("mail", txn=self.conn.txn, mail_from=addr, params=params)
        await self.reply("250 2.1.0 ok")

    async def cmd_RCPT(self, arg):
        if not arg.upper().startswith("TO:"):
            return await self.reply("501 5.5.4 syntax: RCPT TO:<address>")
        if self.conn.mail_from is None:
            return await self.reply("503 5.5.1 need MAIL before RCPT")
        addr, params = parse_path(arg[3:])
        if not addr:
            return await self.reply("501 5.1.3 bad recipient address syntax")
        self.conn.rcpts.append(addr)
        self.conn.event("rcpt", txn=self.conn.txn, rcpt=addr, params=params)
        await self.reply("250 2.1.5 ok")

    async def cmd_DATA(self, arg):
        if not self.conn.rcpts:
            return await self.reply("503 5.5.1 need RCPT before DATA")
        self.conn.event("data_start", txn=self.conn.txn, via="DATA")
        await self.reply("354 end data with <CR><LF>.<CR><LF>")
        content = bytearray()
        while True:
            # Content lines may be long (RFC 5321 says 1000, bodies break it):
            # read in pieces and only look for '.' at the start of a line.
            line, complete = await self.read_line(READ_CHUNK)
            self.conn.add_content(len(line))
            if line in (b".\r\n", b".\n"):
                break
            if line.startswith(b"."):
                line = line[1:]
            content += line
            while not complete:
                line, complete = await self.read_line(READ_CHUNK)
                self.conn.add_content(len(line))
                content += line
        await self.finish_message(bytes(content), "DATA")

    async def cmd_BDAT(self, arg):
        parts = arg.split()
        if not parts or not parts[0].isdigit() or len(parts) > 2 or \
                (len(parts) == 2 and parts[1].upper() != "LAST"):
            # Without a valid size the chunk cannot be skipped: the stream is lost.
            await self.reply("501 5.5.4 syntax: BDAT size [LAST]")
            raise ClientGone("error")
        size, last = int(parts[0]), len(parts) == 2
        if self.chunks is None:
            self.chunks = bytearray()
            if self.conn.rcpts:
                self.conn.event("data_start", txn=self.conn.txn, via="BDAT")
        chunk = await self.read_exact(size)
        self.conn.add_content(size)
        if not self.conn.rcpts:
            self.chunks = None
            return await self.reply("503 5.5.1 need RCPT before BDAT")
        self.chunks += chunk
        if not last:
            return await self.reply("250 2.0.0 %d octets received" % size)
        content, self.chunks = bytes(self.chunks), None
        await self.finish_message(content, "BDAT")

    async def finish_message(self, content, via):
        if len(content) > self.cfg.max_size:
            self.conn.reset_envelope()
            return await self.reply("552 5.3.4 message too big")
        self.conn.save_message(content, via)
        self.conn.reset_envelope()
        await self.reply("250 2.0.0 stored as conn %d msg %d" % (self.conn.cid, self.conn.messages))

    async def cmd_RSET(self, arg):
        self.conn.reset_envelope()
        self.chunks = None
        await self.reply("250 2.0.0 ok")

    async def cmd_NOOP(self, arg):
        await self.reply("250 2.0.0 ok")

    async def cmd_VRFY(self, arg):
        await self.reply("252 2.0.0 cannot verify, will accept")

    async def cmd_HELP(self, arg):
        await self.reply("214 2.0.0 rcptwall test sink")

    async def cmd_QUIT(self, arg):
        await self.reply("221 2.0.0 bye")
        return "quit"

    async def cmd_STARTTLS(self, arg):
        if self.cfg.tls is None or self.tls_on or "STARTTLS" in self.cfg.disabled:
            return await self.reply("502 5.5.1 STARTTLS not offered")
        await self.reply("220 2.0.0 ready to start TLS")
        # RFC 3207: anything pipelined after STARTTLS must be thrown away,
        # or a man in the middle could inject commands into the TLS session.
        self.conn.event("starttls", discarded_bytes=len(self.buf))
        self.buf.clear()
        try:
            await self.writer.start_tls(self.cfg.tls)
        except (ssl.SSLError, OSError, ConnectionError):
            raise ClientGone("error")
        self.tls_on = True
        self.greeted = False
        self.conn.reset_envelope()


class Config:
    def __init__(self, args):
        self.hostname = args.hostname
        self.timeout = args.timeout
        self.max_size = args.max_size
        self.reply_delay = args.reply_delay
        self.disabled = {e.upper() for e in args.disable}
        self.tls = None
        if args.tls_cert:
            self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.load_cert_chain(args.tls_cert, args.tls_key)


async def handle(cfg, store, reader, writer, implicit_tls):
    cid, folder = store.new_connection()
    conn = Connection(store, cid, folder)
    peer = writer.get_extra_info("peername") or ("?", 0)
    local = writer.get_extra_info("sockname") or ("?", 0)
    conn.event("connect", peer=peer[0], peer_port=peer[1], local=local[0],
               local_port=local[1], tls="implicit" if implicit_tls else "none")
    session = Session(cfg, conn, reader, writer, implicit_tls)
    how = "quit"
    try:
        await session.run()
    except ClientGone as gone:
        how = gone.how
    except asyncio.CancelledError:
        how = "shutdown"
    finally:
        conn.event("close", how=how, bytes=conn.bytes_in, content_bytes=conn.content_bytes,
                   messages=conn.messages, pipelined=conn.pipelined, tls=session.tls_on,
                   open_txn=conn.open_transaction())
        conn.close()
        writer.close()


def parse_listen(spec):
    """'198.51.100.21:25' or '[2001:db8:25::21]:25' -> (host, port)."""
    if spec.startswith("["):
        host, sep, port = spec[1:].partition("]:")
    else:
        host, sep, port = spec.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError("expected ADDR:PORT or [ADDR6]:PORT, got %r" % spec)
    return host, int(port)


def parse_args(argv):
    p = argparse.ArgumentParser(description="SMTP sink that stores every message and byte.")
    p.add_argument("--listen", action="append", type=parse_listen, required=True,
                   metavar="ADDR:PORT", help="listen here (repeatable; IPv6 as [ADDR]:PORT)")
    p.add_argument("--store", required=True, help="folder for messages and byte logs")
    p.add_argument("--tls-cert", help="PEM certificate: offer STARTTLS")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--implicit-tls-port", action="append", type=int, default=[],
                   metavar="PORT", help="also listen on PORT at every --listen address, "
                   "TLS from the first byte (repeatable; needs --tls-cert)")
    p.add_argument("--hostname", default="sink.rcptwall.test", help="name in greeting and EHLO")
    p.add_argument("--disable", action="append", default=[], metavar="EXT",
                   help="do not offer this extension (%s)" % ", ".join(EXTENSIONS))
    p.add_argument("--max-size", type=int, default=64 << 20, help="SIZE limit in bytes")
    p.add_argument("--timeout", type=float, default=300, help="idle seconds before hanging up")
    p.add_argument("--ready-file", help="written once every listener is bound")
    p.add_argument("--reply-delay", type=float, default=0, metavar="SECONDS",
                   help="answer this long after the client's bytes arrived, standing in "
                   "for the round trip to a remote server (default 0)")
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if args.implicit_tls_port and not args.tls_cert:
        p.error("--implicit-tls-port needs --tls-cert and --tls-key")
    unknown = {e.upper() for e in args.disable} - set(EXTENSIONS)
    if unknown:
        p.error("unknown extension(s) for --disable: %s" % ", ".join(sorted(unknown)))
    return args


async def serve(args):
    cfg = Config(args)
    store = Store(args.store)
    listeners = [(h, port, False) for h, port in args.listen]
    listeners += [(h, port, True) for h, _ in args.listen for port in args.implicit_tls_port]
    servers = []
    for host, port, implicit in listeners:
        def client(reader, writer, implicit=implicit):
            return handle(cfg, store, reader, writer, implicit)
        servers.append(await asyncio.start_server(
            client, host, port, ssl=cfg.tls if implicit else None, reuse_address=True))
    if args.ready_file:
        with open(args.ready_file + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.rename(args.ready_file + ".tmp", args.ready_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for s in servers:
        s.close()
    # Open sessions get cancelled and log "close" with how=shutdown.
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    store.log.close()


def main(argv):
    args = parse_args(argv)
    try:
        asyncio.run(serve(args))
    except OSError as e:
        print("smtp_sink: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
