"""YAML of the declared objects that the operator's and the chart's tests send to the
emulated API server: a builder a kind, taking what differs between tests as arguments, so
that a test's fleet spells out only what is its own. Text, as `kubectl apply` and the
loader read it; `documents()` in tests/operator/harness.py validates it."""

from __future__ import annotations

import textwrap

API_VERSION_LINE = "apiVersion: energy.reconciler.dev/v1alpha1"
HOME_ZAP_SERIAL = "zap-00000000000000a1"
# The MQTT battery's password, read from the Secret the tests create beside the fleet.
SECRET_REF = "{secretKeyRef: {name: ferroamp-mqtt, key: password}}"


def document(kind: str, name: str, spec: str, extra: str = "") -> str:
    """One object of ours: `spec` (and `extra`, more lines of it) as YAML lines, indented
    as one likes; they are set under `spec:`."""
    lines = textwrap.dedent(spec).strip("\n") + ("\n" + extra.strip("\n") if extra else "")
    return (f"{API_VERSION_LINE}\nkind: {kind}\nmetadata: {{name: {name}}}\nspec:\n"
            f"{textwrap.indent(lines, '  ')}\n")


def stream(*documents: str) -> str:
    """A YAML stream of `documents`, as one file holds them."""
    return "---\n".join(documents)


def novacore_site(name: str = "home", display_name: str = "Home", org: str = "org-home",
                  timezone: str = "Europe/Stockholm") -> str:
    return document("Site", name, f"""
        displayName: {display_name}
        timezone: {timezone}
        novacore: {{orgId: {org}}}
        """)


def enapter_site(name: str = "h2-lab", display_name: str = "H2 Lab",
                 timezone: str = "Europe/Rome") -> str:
    return document("Site", name, f"""
        displayName: {display_name}
        timezone: {timezone}
        enapter: {{}}
        """)


# The Enapter gateway the LINK tests declare.
ENAPTER_GATEWAY_ID = "GW0000000000000000000000000000001"


def enapter_gateway(name: str = "h2-gw", site: str = "h2-lab",
                    hardware_id: str = ENAPTER_GATEWAY_ID) -> str:
    return document("Gateway", name, f"""
        siteRef: {site}
        enapter: {{hardwareId: {hardware_id}, firmwareVersion: 3.1.0}}
        """)


def link_master(name: str, hardware_id: str, gateway: str = "h2-gw",
                config_file: object = None, extra: str = "") -> str:
    """An Enapter LINK master behind `gateway`, writing its config to `config_file` if
    one is given."""
    output = f", configOutput: {{file: '{config_file}'}}" if config_file is not None else ""
    return document("Device", name, f"""
        gatewayRef: {gateway}
        hardwareId: {hardware_id}
        enapter: {{kind: link_master{output}}}
        """, extra)


def enapter_ucm(name: str, hardware_id: str, site: str = "h2-lab",
                secret_name: str | None = None, extra: str = "") -> str:
    """An Enapter UCM of `site` (on no gateway, over MQTT), writing its config to the
    Secret `secret_name` if one is given."""
    output = f", configOutput: {{secretName: {secret_name}}}" if secret_name else ""
    return document("Device", name, f"""
        siteRef: {site}
        hardwareId: {hardware_id}
        enapter: {{kind: ucm, protocol: MQTT{output}}}
        """, extra)


def zap_gateway(name: str = "home-zap", site: str = "home", serial: str = HOME_ZAP_SERIAL,
                url: str = "http://192.168.1.2", extra: str = "") -> str:
    return document("Gateway", name, f"""
        siteRef: {site}
        zap: {{serial: {serial}, url: "{url}"}}
        """, extra)


def ferroamp_battery(name: str = "home-battery", gateway: str = "home-zap",
                     password_from: str = SECRET_REF, extra: str = "") -> str:
    """A Ferroamp battery over MQTT, behind `gateway`, with one battery DER."""
    return document("Device", name, f"""
        gatewayRef: {gateway}
        hardwareId: ferroamp_192.168.1.70
        deviceType: battery
        connection:
          mqtt:
            profile: ferroamp
            brokerHost: 192.168.1.70
            username: extapi
            passwordFrom: {password_from}
        ders:
          - {{name: battery, type: battery}}
        """, extra)


def sungrow_inverter(name: str, gateway: str, hardware_id: str, host: str,
                     ders: tuple[tuple[str, str], ...] = (("pv", "solar"),),
                     extra: str = "") -> str:
    """A Sungrow inverter over Modbus TCP, behind `gateway`, with `ders` (name, type)."""
    listed = "".join(f"\n          - {{name: {der_name}, type: {type_}}}"
                     for der_name, type_ in ders)
    return document("Device", name, f"""
        gatewayRef: {gateway}
        hardwareId: {hardware_id}
        deviceType: inverter
        connection:
          modbusTcp: {{host: {host}, profile: sungrow}}
        ders:{listed}
        """, extra)


def der(name: str, device: str, der_name: str, type_: str, extra: str = "") -> str:
    """A DER declared in its own document."""
    return document("DER", name, f"""
        deviceRef: {device}
        name: {der_name}
        type: {type_}
        """, extra)


# A LINK slave between two masters of the H2 Lab (`link_slave_fleet`).
LINK_MASTER_A = "LA0000000000000000000000000000001"
LINK_MASTER_B = "LB0000000000000000000000000000001"
LINK_SLAVE = "LS0000000000000000000000000000001"


def link_slave_fleet(master: str = "link-a", file: str = "cfg/slave.json") -> str:
    """The H2 Lab with its gateway, LINK masters `link-a` and `link-b`, and the slave
    `slave` on `master`, writing its config to `file`: moved to the other master, a
    replace (Enapter cannot move a device)."""
    return stream(
        enapter_site(),
        enapter_gateway(),
        link_master("link-a", LINK_MASTER_A),
        link_master("link-b", LINK_MASTER_B),
        document("Device", "slave", f"""
            gatewayRef: h2-gw
            hardwareId: {LINK_SLAVE}
            enapter: {{kind: link_slave, masterRef: {master}, configOutput: {{file: {file}}}}}
            """),
    )


RELEASED_UCM_ID = "A8795CBA5375484E829105E959663C8B"


def released_ucm(name: str, output: str = "configOutput: {secretName: ucm-config}") -> str:
    """A UCM of the H2 Lab with `deletionPolicy: Release` and the configOutput `output`
    (a YAML line): renamed, the new name takes it over."""
    return document("Device", name, f"""
        siteRef: h2-lab
        hardwareId: {RELEASED_UCM_ID}
        deletionPolicy: Release
        enapter:
          kind: ucm
          protocol: MQTT
          {output}
        """)
