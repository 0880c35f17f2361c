"""A stand-in for InfluxDB 2.x's HTTP API, for tests (no InfluxDB 2.x server installs here).

It serves the two endpoints Pulse's store uses and checks what it receives as strictly as a
real server would, and more strictly where Pulse's own contract is concerned:

- `POST /api/v2/write?org=&bucket=&precision=us`: token auth; line protocol parsed field by
  field (escaped measurement, tags and keys; float fields; integer timestamps). A line that
  breaks the protocol or Pulse's shape (measurement `telemetry`, tags `tenant_id` and
  `device_id`, float fields) is answered 400 and recorded in `rejected`.
- `POST /api/v2/query?org=`: token auth; the JSON body's dialect must ask for the annotations
  the client parses; the Flux text must be exactly the query Pulse's store builds (its string
  literals unescaped per the Flux spec). The answer is computed from the stored points (range,
  filter, tail per field, pivot, sort, limit) and written in InfluxDB's annotated CSV:
  `#datatype`, `#group` and `#default` rows, a header row, then one row per record.

Points can also be added directly (`add_point`), as Telegraf would write them.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

FLUX_STRING = r'"((?:[^"\\]|\\.)*)"'
FLUX_TIME = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)"
LATEST_QUERY = re.compile(
    r"\Afrom\(bucket: " + FLUX_STRING + r"\)\n"
    r"  \|> range\(start: (?:0|" + FLUX_TIME + r")(?:, stop: " + FLUX_TIME + r")?\)\n"
    r"  \|> filter\(fn: \(r\) => r\._measurement == "
    + FLUX_STRING
    + r" and r\.tenant_id == "
    + FLUX_STRING
    + r" and r\.device_id == "
    + FLUX_STRING
    + r"\)\n"
    r"  \|> tail\(n: (\d+)\)\n"
    r'  \|> pivot\(rowKey: \["_time"\], columnKey: \["_field"\], valueColumn: "_value"\)\n'
    r"  \|> group\(\)\n"
    r'  \|> sort\(columns: \["_time"\], desc: true\)\n'
    r"  \|> limit\(n: (\d+)\)\n\Z"
)
FLUX_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t", "$": "$"}


@dataclass
class StoredPoint:
    bucket: str
    measurement: str
    tags: dict[str, str]
    fields: dict[str, float]
    time_us: int


@dataclass
class FluxRequest:
    bucket: str
    measurement: str
    tenant_id: str
    device_id: str
    start_us: int
    stop_us: int | None
    tail: int
    limit: int
    text: str


@dataclass
class InfluxPeer:
    token: str = "peer-token"
    org: str = "pulse-org"
    bucket: str = "pulse-telemetry"
    points: list[StoredPoint] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    queries: list[FluxRequest] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # Server ------------------------------------------------------------------------------

    def start(self) -> None:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                url = urlsplit(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Authorization") != f"Token {peer.token}":
                    return self._answer(401, {"code": "unauthorized", "message": "unauthorized access"})
                if params.get("org") != peer.org:
                    return self._answer(
                        404, {"code": "not found", "message": f'organization name "{params.get("org")}" not found'}
                    )
                if url.path == "/api/v2/write":
                    status, answer = peer._write(params, body.decode("utf-8"))
                    return self._answer(status, answer)
                if url.path == "/api/v2/query":
                    status, answer = peer._query(body)
                    if status != 200:
                        return self._answer(status, answer)
                    return self._answer(200, answer, content_type="text/csv; charset=utf-8")
                return self._answer(404, {"code": "not found", "message": "path not found"})

            def _answer(self, status, answer, content_type="application/json; charset=utf-8"):
                data = b"" if answer is None else (answer if isinstance(answer, bytes) else json.dumps(answer).encode())
                self.send_response(status)
                if data:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 1024
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # Data ----------------------------------------------------------------------------------

    def add_point(
        self, tenant_id: str, device_id: str, fields: dict[str, float], at: datetime, **extra_tags: str
    ) -> None:
        """A point written by another tool (Telegraf, say)."""
        with self._lock:
            self.points.append(
                StoredPoint(
                    self.bucket,
                    "telemetry",
                    {"tenant_id": tenant_id, "device_id": device_id, **extra_tags},
                    dict(fields),
                    _micros(at),
                )
            )

    def queries_for(self, device_id: str) -> list[FluxRequest]:
        with self._lock:
            return [q for q in self.queries if q.device_id == device_id]

    # Write ---------------------------------------------------------------------------------

    def _write(self, params: dict[str, str], body: str):
        if params.get("bucket") != self.bucket:
            return self._reject(404, f'bucket "{params.get("bucket")}" not found')
        if params.get("precision") != "us":
            return self._reject(400, f"Pulse writes microseconds; precision was {params.get('precision')!r}")
        parsed = []
        for line in body.split("\n"):
            if not line.strip():
                continue
            try:
                parsed.append(_parse_line(line))
            except ValueError as exc:
                return self._reject(400, f"unable to parse '{line}': {exc}")
        with self._lock:
            for measurement, tags, fields, time_us in parsed:
                self.points.append(StoredPoint(self.bucket, measurement, tags, fields, time_us))
            self.lines.extend(line for line in body.split("\n") if line.strip())
        return 204, None

    def _reject(self, status: int, message: str):
        with self._lock:
            self.rejected.append(message)
        return status, {"code": "invalid", "message": message}

    # Query ---------------------------------------------------------------------------------

    def _query(self, body: bytes):
        try:
            request = json.loads(body)
        except ValueError:
            return self._reject(400, "request body is not JSON")
        dialect = request.get("dialect") or {}
        if (
            sorted(dialect.get("annotations") or []) != ["datatype", "default", "group"]
            or dialect.get("header") is not True
        ):
            return self._reject(400, f"unexpected dialect {dialect}")
        text = request.get("query") or ""
        match = LATEST_QUERY.match(text)
        if match is None:
            return self._reject(400, f"not the query Pulse builds:\n{text}")
        bucket, start, stop, measurement, tenant_id, device_id, tail, limit = match.groups()
        try:
            flux = FluxRequest(
                bucket=_flux_unescape(bucket),
                measurement=_flux_unescape(measurement),
                tenant_id=_flux_unescape(tenant_id),
                device_id=_flux_unescape(device_id),
                start_us=_micros(_parse_time(start)) if start else 0,
                stop_us=_micros(_parse_time(stop)) if stop else None,
                tail=int(tail),
                limit=int(limit),
                text=text,
            )
        except ValueError as exc:
            return self._reject(400, f"bad Flux literal: {exc}")
        with self._lock:
            self.queries.append(flux)
            points = [
                p
                for p in self.points
                if p.bucket == flux.bucket
                and p.measurement == flux.measurement
                and p.tags.get("tenant_id") == flux.tenant_id
                and p.tags.get("device_id") == flux.device_id
                and p.time_us >= flux.start_us
                and (flux.stop_us is None or p.time_us < flux.stop_us)
            ]
        return 200, _annotated_csv(flux, points)


def _micros(value: datetime) -> int:
    value = value.astimezone(timezone.utc)
    return int(value.replace(tzinfo=timezone.utc).timestamp()) * 1_000_000 + value.microsecond


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _rfc3339(time_us: int) -> str:
    value = datetime.fromtimestamp(time_us // 1_000_000, timezone.utc).replace(microsecond=time_us % 1_000_000)
    return value.isoformat().replace("+00:00", "Z")


def _flux_unescape(literal: str) -> str:
    out, i = [], 0
    while i < len(literal):
        char = literal[i]
        if char == "\\":
            escaped = literal[i + 1 : i + 2]
            if escaped not in FLUX_ESCAPES:
                raise ValueError(f"unknown escape \\{escaped}")
            out.append(FLUX_ESCAPES[escaped])
            i += 2
            continue
        if char == "$" and literal[i + 1 : i + 2] == "{":
            raise ValueError("unescaped ${ would interpolate")
        out.append(char)
        i += 1
    return "".join(out)


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts, current, i = [], [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
        elif text[i] == separator:
            parts.append("".join(current))
            current = []
            i += 1
        else:
            current.append(text[i])
            i += 1
    parts.append("".join(current))
    return parts


def _unescape_key(text: str) -> str:
    return re.sub(r"\\([ ,=\\])", r"\1", text)


def _parse_line(line: str):
    """One line of line protocol, as Pulse must write it: measurement,tags fields timestamp."""
    sections = _split_unescaped(line, " ")
    if len(sections) != 3:
        raise ValueError("expected measurement+tags, fields and a timestamp")
    head, fields_text, timestamp = sections
    measurement, *tag_pairs = _split_unescaped(head, ",")
    tags = {}
    for pair in tag_pairs:
        key, value = (_unescape_key(part) for part in _split_unescaped(pair, "="))
        tags[key] = value
    if _unescape_key(measurement) != "telemetry":
        raise ValueError(f"measurement {measurement!r} is not telemetry")
    if not {"tenant_id", "device_id"} <= set(tags):
        raise ValueError("tags tenant_id and device_id are required")
    if list(tags) != sorted(tags):
        raise ValueError("tags are not sorted by key")
    fields = {}
    for pair in _split_unescaped(fields_text, ","):
        key, value = _split_unescaped(pair, "=")
        if not re.fullmatch(r"-?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?", value):
            raise ValueError(f"field {key} is not a float: {value!r}")
        fields[_unescape_key(key)] = float(value)
    if not fields:
        raise ValueError("no fields")
    if not timestamp.isdigit():
        raise ValueError(f"bad timestamp {timestamp!r}")
    return _unescape_key(measurement), tags, fields, int(timestamp)


def _annotated_csv(flux: FluxRequest, points: list[StoredPoint]) -> bytes:
    """The pivoted, grouped, sorted, limited result in InfluxDB's annotated CSV."""
    by_field: dict[str, list[StoredPoint]] = {}
    for point in sorted(points, key=lambda p: p.time_us):
        for name in point.fields:
            by_field.setdefault(name, []).append(point)
    rows: dict[int, dict[str, object]] = {}
    for name, series in by_field.items():
        for point in series[-flux.tail :]:
            row = rows.setdefault(point.time_us, {"_measurement": point.measurement, **point.tags})
            row[name] = point.fields[name]
    if not rows:
        return b"\r\n"
    tag_names = sorted(
        {key for row in rows.values() for key in row if key != "_measurement" and isinstance(row[key], str)}
    )
    field_names = sorted(by_field)
    columns = ["result", "table", "_start", "_stop", "_time", "_measurement", *tag_names, *field_names]
    datatypes = ["string", "long", "dateTime:RFC3339", "dateTime:RFC3339", "dateTime:RFC3339", "string"]
    datatypes += ["string"] * len(tag_names) + ["double"] * len(field_names)
    start = _rfc3339(flux.start_us)
    stop = _rfc3339(flux.stop_us) if flux.stop_us is not None else _rfc3339(_micros(datetime.now(timezone.utc)))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["#datatype", *datatypes])
    writer.writerow(["#group"] + ["false"] * len(columns))
    writer.writerow(["#default", "_result"] + [""] * (len(columns) - 1))
    writer.writerow(["", *columns])
    for time_us in sorted(rows, reverse=True)[: flux.limit]:
        row = rows[time_us]
        values = ["", "0", start, stop, _rfc3339(time_us), row["_measurement"]]
        values += [row.get(name, "") for name in tag_names]
        values += [repr(row[name]) if name in row else "" for name in field_names]
        writer.writerow(["", *values])
    out.write("\r\n")
    return out.getvalue().encode()
