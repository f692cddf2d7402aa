#!/usr/bin/python3
"""SMTP load generator for rcptwall's pipeline benchmark.

  smtp_load.py block  HOST PORT N CONCURRENCY   N conversations, each with
      one lookalike recipient; counts how many were cut off before the body
      could be sent (connection reset/aborted) and how many delivered.
  smtp_load.py rate   HOST PORT SECONDS CONNS RCPTS   CONNS connections that
      pipeline transactions of RCPTS legitimate recipients each (RSET between
      them) for SECONDS; prints recipients sent.

Only ever talks to the address it is given (a test namespace).
"""
import asyncio
import sys
import time


async def read_reply(reader):
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionResetError("closed")
        if line[3:4] != b"-":
            return line


async def one_block(host, port, i, results):
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        results["connect_error"] += 1
        return
    try:
        await read_reply(reader)
        writer.write(b"EHLO load.example\r\n")
        await read_reply(reader)
        writer.write(b"MAIL FROM:<load@example.com>\r\n")
        await read_reply(reader)
        writer.write(b"RCPT TO:<user%d@army.ml>\r\n" % i)
        await read_reply(reader)
        writer.write(b"DATA\r\n")
        await read_reply(reader)
        writer.write(b"Subject: x\r\n\r\nbody\r\n.\r\n")
        await read_reply(reader)
        results["delivered"] += 1
        writer.write(b"QUIT\r\n")
    except (OSError, ConnectionError, asyncio.IncompleteReadError):
        results["cut"] += 1
    finally:
        writer.close()


async def run_block(host, port, n, conc):
    results = {"cut": 0, "delivered": 0, "connect_error": 0}
    sem = asyncio.Semaphore(conc)

    async def guarded(i):
        async with sem:
            await asyncio.wait_for(one_block(host, port, i, results), 30)

    await asyncio.gather(*(guarded(i) for i in range(n)), return_exceptions=True)
    print("conversations=%d cut=%d delivered=%d connect_errors=%d"
          % (n, results["cut"], results["delivered"], results["connect_error"]))


async def one_rate(host, port, deadline, rcpts, counter, cid):
    reader, writer = await asyncio.open_connection(host, port)
    await read_reply(reader)
    writer.write(b"EHLO load.example\r\n")
    await read_reply(reader)
    t = 0
    while time.monotonic() < deadline:
        batch = [b"MAIL FROM:<load@example.com>\r\n"]
        batch += [b"RCPT TO:<u%d.%d.%d@example.org>\r\n" % (cid, t, r) for r in range(rcpts)]
        batch.append(b"RSET\r\n")
        writer.write(b"".join(batch))
        for _ in range(len(batch)):
            await read_reply(reader)
        counter[0] += rcpts
        t += 1
    writer.write(b"QUIT\r\n")
    await read_reply(reader)
    writer.close()


async def run_rate(host, port, seconds, conns, rcpts):
    counter = [0]
    start = time.monotonic()
    deadline = start + seconds
    await asyncio.gather(*(one_rate(host, port, deadline, rcpts, counter, c)
                           for c in range(conns)))
    elapsed = time.monotonic() - start
    print("recipients=%d seconds=%.2f rate=%.0f" % (counter[0], elapsed, counter[0] / elapsed))


def main():
    mode = sys.argv[1]
    host, port = sys.argv[2], int(sys.argv[3])
    if mode == "block":
        asyncio.run(run_block(host, port, int(sys.argv[4]), int(sys.argv[5])))
    elif mode == "rate":
        asyncio.run(run_rate(host, port, float(sys.argv[4]), int(sys.argv[5]),
                             int(sys.argv[6])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
