"""Generate a synthetic fleet as site YAML: N sites, each with one Zap gateway and D
devices (a Sungrow inverter over Modbus TCP, a P1 meter, and MQTT batteries and chargers).
Used by `reconciler sim up --sites N`, the benchmarks and the tests."""

from __future__ import annotations

from pathlib import Path

API = "energy.reconciler.dev/v1alpha1"


def site_documents(index: int, devices_per_site: int, *, org: str) -> str:
    """Multi-document YAML of one generated site."""
    name = f"site-{index:05d}"
    serial = f"zap-{index:016x}"
    unit = index % 247 + 1  # shared Modbus servers address sites by unit id
    docs = [
        f"""apiVersion: {API}
kind: Site
metadata:
  name: {name}
  labels: {{fleet: generated, shard: "{index % 4}"}}
spec:
  displayName: Generated site {index:05d}
  timezone: Europe/Stockholm
  novacore: {{orgId: {org}}}
""",
        f"""apiVersion: {API}
kind: Gateway
metadata:
  name: {name}-zap
spec:
  siteRef: {name}
  zap:
    serial: {serial}
    url: http://192.168.1.2
""",
    ]
    for d in range(devices_per_site):
        device = f"{name}-dev-{d:02d}"
        if d == 0:
            body = f"""  hardwareId: SG{index:05d}{d:02d}
  deviceType: inverter
  manufacturer: Sungrow
  model: SH10RT
  connection:
    modbusTcp: {{host: 192.168.1.60, port: 502, unitId: {unit}, profile: sungrow}}
  ders:
    - {{name: pv, type: solar}}
    - {{name: battery, type: battery}}
    - {{name: grid, type: meter, publish: false}}
"""
        elif d == 1:
            body = f"""  hardwareId: P1{index:05d}
  deviceType: energy_meter
  connection:
    p1Uart: {{}}
  ders:
    - {{name: grid, type: meter}}
"""
        else:
            # A Zap names an MQTT device by its profile and broker address, and Novacore
            # keeps one device per hardware id in an organisation: each site is on a
            # subnet of its own, so that no two sites of the fleet declare one hardware id.
            host = f"10.{index // 256 % 256}.{index % 256}.{100 + d}"
            body = f"""  hardwareId: ferroamp_{host}
  deviceType: battery
  connection:
    mqtt: {{profile: ferroamp, brokerHost: {host}}}
  ders:
    - {{name: battery, type: battery}}
"""
        docs.append(f"""apiVersion: {API}
kind: Device
metadata:
  name: {device}
spec:
  gatewayRef: {name}-zap
{body}""")
    return "---\n".join(docs)


def write_fleet(
    directory: str | Path,
    sites: int,
    devices_per_site: int = 10,
    *,
    org: str = "org-generated",
    sites_per_file: int = 10,
) -> list[Path]:
    """Write the generated fleet into `directory`, a few sites per file."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for start in range(0, sites, sites_per_file):
        text = "---\n".join(
            site_documents(i, devices_per_site, org=org)
            for i in range(start, min(sites, start + sites_per_file))
        )
        path = out / f"sites-{start:05d}.yaml"
        path.write_text(text, encoding="utf-8")
        files.append(path)
    return files
