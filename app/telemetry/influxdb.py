"""TELEMETRY_BACKEND=influxdb: readings in an InfluxDB 2.x bucket, through influxdb-client.

Each reading is one point of measurement `telemetry`, tagged `tenant_id` and `device_id`,
one float field per metric (floats always: InfluxDB refuses a write whose field type differs
from the one already stored, so `21` after `21.5` would be lost). Any tool that writes points
of that shape (Telegraf, say) feeds the same API and live feed.

Reads are one Flux query: the device's series, the last N values of each field, pivoted into
rows by time, newest first. Tenant and device ids go into the query as escaped Flux string
literals: InfluxDB OSS does not support bound query parameters.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import urllib3
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.flux_csv_parser import FluxCsvParserException, FluxQueryException
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from app.telemetry import Reading, TelemetryStoreError, as_utc, is_metric_value

MEASUREMENT = "telemetry"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
TIMEOUT_MILLISECONDS = 10_000

_FLUX_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "$": "\\$"}


def flux_string(value: str) -> str:
    """`value` as a Flux string literal (quotes, backslashes and `${` interpolation escaped)."""
    return '"' + "".join(_FLUX_ESCAPES.get(char, char) for char in value) + '"'


def flux_time(value: datetime) -> str:
    """An RFC 3339 time literal in UTC with microseconds, as Flux writes it."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def epoch_micros(value: datetime) -> int:
    """Microseconds since the epoch, exactly (influxdb-client's own conversion goes through a
    float and can land one microsecond early)."""
    return (as_utc(value) - EPOCH) // timedelta(microseconds=1)


def latest_query(
    bucket: str,
    tenant_id: str,
    device_id: str,
    limit: int,
    before: datetime | None = None,
    after: datetime | None = None,
) -> str:
    """The Flux query for a device's newest `limit` readings, in [after, before) when given."""
    time_range = f"start: {flux_time(after)}" if after is not None else "start: 0"
    if before is not None:
        time_range += f", stop: {flux_time(before)}"
    return (
        f"from(bucket: {flux_string(bucket)})\n"
        f"  |> range({time_range})\n"
        f"  |> filter(fn: (r) => r._measurement == {flux_string(MEASUREMENT)}"
        f" and r.tenant_id == {flux_string(tenant_id)} and r.device_id == {flux_string(device_id)})\n"
        f"  |> tail(n: {int(limit)})\n"
        '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
        "  |> group()\n"
        '  |> sort(columns: ["_time"], desc: true)\n'
        f"  |> limit(n: {int(limit)})\n"
    )


def _store_error(exc: Exception) -> TelemetryStoreError:
    if isinstance(exc, ApiException):
        return TelemetryStoreError(f"InfluxDB answered {exc.status}: {(exc.body or exc.reason or '')[:200]}")
    if isinstance(exc, FluxQueryException):
        return TelemetryStoreError(f"InfluxDB query failed: {exc.message[:200]}")
    return TelemetryStoreError(f"InfluxDB unreachable: {type(exc).__name__}")


_FAILURES = (ApiException, FluxQueryException, FluxCsvParserException, urllib3.exceptions.HTTPError, OSError)


class InfluxTelemetryStore:
    """Readings as InfluxDB points: synchronous writes, Flux reads."""

    def __init__(self, url: str, token: str | None, org: str, bucket: str, timeout_ms: int = TIMEOUT_MILLISECONDS):
        self.bucket = bucket
        self.org = org
        self._client = InfluxDBClient(url=url, token=token or "", org=org, timeout=timeout_ms)
        self._writer = self._client.write_api(write_options=SYNCHRONOUS)
        self._reader = self._client.query_api()

    def write(self, tenant_id: str, device_id: str, reading: Reading) -> None:
        point = (
            Point(MEASUREMENT)
            .tag("tenant_id", tenant_id)
            .tag("device_id", device_id)
            .time(epoch_micros(reading.timestamp), WritePrecision.US)
        )
        for name, value in reading.metrics.items():
            point.field(name, float(value))
        try:
            self._writer.write(bucket=self.bucket, org=self.org, record=point, write_precision=WritePrecision.US)
        except _FAILURES as exc:
            raise _store_error(exc) from exc

    def latest(
        self, tenant_id: str, device_id: str, limit: int, before: datetime | None = None, after: datetime | None = None
    ) -> list[Reading]:
        query = latest_query(self.bucket, tenant_id, device_id, limit, before, after)
        try:
            tables = self._reader.query(query, org=self.org)
        except _FAILURES as exc:
            raise _store_error(exc) from exc
        readings = []
        for table in tables:
            for record in table.records:
                timestamp = record.values.get("_time")
                if not isinstance(timestamp, datetime):
                    continue
                # After the pivot every field is a column; tags (strings) and Flux's own
                # columns (_start, result, table...) are not metrics.
                metrics = {
                    name: value
                    for name, value in record.values.items()
                    if not name.startswith("_") and name not in ("result", "table") and is_metric_value(value)
                }
                readings.append(Reading(timestamp.astimezone(timezone.utc), metrics))
        readings.sort(key=lambda reading: reading.timestamp, reverse=True)
        return readings[:limit]

    def close(self) -> None:
        self._client.close()
