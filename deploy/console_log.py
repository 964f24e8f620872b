"""supervisord event listener: every program's output, line by line, prefixed with its name.

    console_log.py [--color] NAME...

Subscribed to PROCESS_LOG events (see deploy/supervisord_conf.py). supervisord
hands over output in chunks as it reads them, so partial lines are kept until
their end arrives. Lines go to this listener's stderr, which supervisord writes
to its own stdout; stdout is the event protocol with supervisord
(http://supervisord.org/events.html). The programs' full output is in their
log files either way; if this listener falls behind, supervisord drops the
oldest buffered events (and says so in its log), never the files' lines.
"""
import io
import sys

COLORS = [36, 33, 32, 35, 34, 31, 96, 93, 92, 95, 94, 91]
MAX_PENDING = 8192  # a "line" longer than this is printed in pieces


def headers(line):
    return dict(token.split(":", 1) for token in line.split())


class Console:
    def __init__(self, names, out, color=False):
        self.out, self.color = out, color
        self.width = max([len(n) for n in names] + [7])
        self.names = list(names)
        self.pending = {}

    def prefix(self, name):
        text = f"{name:<{self.width}} | "
        if not self.color:
            return text
        if name not in self.names:
            self.names.append(name)
        code = COLORS[self.names.index(name) % len(COLORS)]
        return f"\033[{code}m{text}\033[0m"

    def feed(self, name, data):
        text = self.pending.pop(name, "") + data
        *lines, rest = text.split("\n")
        if len(rest) > MAX_PENDING:
            lines, rest = lines + [rest], ""
        if rest:
            self.pending[name] = rest
        if lines:
            prefix = self.prefix(name)
            self.out.write("".join(f"{prefix}{line.rstrip(chr(13))}\n" for line in lines))
            self.out.flush()


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    color = "--color" in args
    names = [a for a in args if a != "--color"]
    # supervisord counts `len` in characters of the UTF-8 text it sends: read text, no newline translation.
    events = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", newline="")
    protocol = sys.stdout
    console = Console(names, io.TextIOWrapper(sys.stderr.buffer, encoding="utf-8", errors="replace"), color)
    while True:
        protocol.write("READY\n")
        protocol.flush()
        line = events.readline()
        if not line:  # supervisord went away
            return
        envelope = headers(line)
        payload = events.read(int(envelope["len"]))
        if envelope.get("eventname", "").startswith("PROCESS_LOG"):
            head, _, data = payload.partition("\n")
            console.feed(headers(head).get("processname", "?"), data)
        protocol.write("RESULT 2\nOK")
        protocol.flush()


if __name__ == "__main__":
    main()
