"""The `Device` kind: one piece of hardware (inverter, battery, meter, charger, Enapter
module), how its gateway talks to it, the DERs it provides, how its identity is verified,
and its registration on Enapter and Flatpeak."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator, model_validator

from reconciler.model.base import (
    DisplayText,
    Identifier,
    Resource,
    ResourceName,
    StrictModel,
)
from reconciler.model.der import MAX_DERS_PER_DEVICE, DerFields
from reconciler.model.env_names import PasswordEnvName, SecretKey
from reconciler.model.gateway import DeletionPolicy
from reconciler.model.network import Host
from reconciler.model.vocab import DeviceType
from reconciler.path_limits import path_problem
from reconciler.printable import echo

Port = Field(ge=1, le=65535)


class ModbusTcp(StrictModel):
    """Modbus TCP: the gateway connects to the device over the LAN."""

    host: Host = Field(
        min_length=1,
        description="IP address or host name of the device (as the gateway sees it).",
        examples=["192.168.1.60"],
    )
    port: int = Field(
        strict=True, default=502, ge=1, le=65535, description="TCP port.", examples=[502]
    )
    unit_id: int = Field(
        strict=True, default=1, ge=0, le=255, description="Modbus unit id.", examples=[1]
    )
    profile: str = Field(description="Zap device profile.", examples=["sungrow"])


class Parity(StrEnum):
    NONE = "none"
    EVEN = "even"
    ODD = "odd"


# The most the Zap takes (`POST /api/devices` answers 400 above it). Checked here because
# the Zap cannot change a connection: a new baud rate is a replace, whose add would fail
# after the device was removed.
MAX_BAUD_RATE = 10_000_000


class ModbusRtu(StrictModel):
    """Modbus RTU over the gateway's RS-485 port."""

    baud_rate: int = Field(
        strict=True, default=9600, gt=0, le=MAX_BAUD_RATE, description="Baud rate.",
        examples=[9600],
    )
    unit_id: int = Field(
        strict=True, default=1, ge=0, le=255, description="Modbus unit id.", examples=[1]
    )
    profile: str = Field(description="Zap device profile.", examples=["sungrow"])
    parity: Parity = Field(default=Parity.NONE, description="Parity.", examples=["none"])
    data_bits: int = Field(
        strict=True, default=8, ge=5, le=8, description="Data bits.", examples=[8]
    )
    stop_bits: int = Field(
        strict=True, default=1, ge=1, le=2, description="Stop bits.", examples=[1]
    )


class P1Uart(StrictModel):
    """A smart meter's P1 port wired to the gateway's UART."""

    profile: str = Field(
        default="p1_meter", description="Zap device profile.", examples=["p1_meter"]
    )
    manufacturer: str | None = Field(
        default=None, description="Meter manufacturer.", examples=["Landis+Gyr"]
    )
    baud_rate: int = Field(
        strict=True, default=115200, gt=0, le=MAX_BAUD_RATE, description="Baud rate.",
        examples=[115200],
    )
    data_bits: int = Field(
        strict=True, default=8, ge=5, le=8, description="Data bits.", examples=[8]
    )
    parity: Parity = Field(default=Parity.NONE, description="Parity.", examples=["none"])
    stop_bits: int = Field(
        strict=True, default=1, ge=1, le=2, description="Stop bits.", examples=[1]
    )


class SecretKeyRef(StrictModel):
    """A key in a Kubernetes Secret (the operator reads it; the CLI reads
    `<secrets dir>/<name>/<key>`, the layout of a mounted Secret). Both follow Kubernetes'
    rules, which also keep each one a single file name inside the secrets directory: the
    value read is sent to the gateway, and on to the broker `brokerHost` names."""

    name: ResourceName = Field(
        description="Secret name: lowercase letters, digits, '-' and '.', at most 253 "
        "characters; each part between dots starts and ends with a letter or digit "
        "(Kubernetes object name rules).",
        examples=["ferroamp-mqtt"],
    )
    key: SecretKey = Field(
        description="Key within the Secret: letters, digits, '-', '_' and '.', at most 253 "
        "characters, and neither '.' nor '..' (Kubernetes Secret key rules).",
        examples=["password"],
    )


class SecretSource(StrictModel):
    """Where a secret value comes from: exactly one of a Secret key or an environment variable.
    Secret values are never written inline in the desired state."""

    secret_key_ref: SecretKeyRef | None = Field(default=None, description="A key of a Secret.")
    env: PasswordEnvName | None = Field(
        default=None,
        description="Name of an environment variable holding the value; not one of the "
        "reconciler's own settings (RECONCILER_*).",
        examples=["FERROAMP_MQTT_PASSWORD"],
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if (self.secret_key_ref is None) == (self.env is None):
            raise ValueError("set exactly one of `secretKeyRef` or `env`")
        return self


class Mqtt(StrictModel):
    """A device the gateway reads from an MQTT broker."""

    profile: str = Field(description="Zap device profile.", examples=["ferroamp"])
    broker_host: Host = Field(min_length=1, description="Broker host.", examples=["192.168.1.70"])
    broker_port: int = Field(
        strict=True,
        default=1883, ge=1, le=65535, description="Broker port.", examples=[1883]
    )
    username: str | None = Field(default=None, description="Broker user name.", examples=["extapi"])
    password_from: SecretSource | None = Field(
        default=None,
        description="Where the broker password comes from. Inline passwords are not accepted.",
    )
    client_id: str | None = Field(default=None, description="MQTT client id.", examples=["zap-1"])


class Connection(StrictModel):
    """How the gateway talks to the device: exactly one of the four connection types."""

    modbus_tcp: ModbusTcp | None = Field(default=None, description="Modbus TCP.")
    modbus_rtu: ModbusRtu | None = Field(default=None, description="Modbus RTU (RS-485).")
    p1_uart: P1Uart | None = Field(default=None, description="P1 smart-meter port.")
    mqtt: Mqtt | None = Field(default=None, description="MQTT broker.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Connection:
        if sum(v is not None for v in self.__dict__.values()) != 1:
            raise ValueError("set exactly one of `modbusTcp`, `modbusRtu`, `p1Uart` or `mqtt`")
        return self

    def chosen(self) -> tuple[str, ModbusTcp | ModbusRtu | P1Uart | Mqtt]:
        """The connection's type (`type`) and its settings (`settings`), found in one pass
        over the fields: the one that is set (validated)."""
        for name, value in self.__dict__.items():
            if value is not None:
                return str(name), value
        raise AssertionError("validated connection has one type")

    @property
    def type(self) -> str:
        """The Zap's name for the connection type (`modbus_tcp`, `p1_uart`, ...)."""
        return self.chosen()[0]

    @property
    def settings(self) -> ModbusTcp | ModbusRtu | P1Uart | Mqtt:
        return self.chosen()[1]


class VerificationPath(StrEnum):
    DIRECT = "direct"
    GATEWAY = "gateway"


class Verification(StrictModel):
    """Check the device's identity on the local network before provisioning it."""

    check_serial: bool = Field(
        strict=True,
        default=False,
        description="Read the device's serial over Modbus TCP (a `modbusTcp` connection) and "
        "refuse to provision when it differs from `hardwareId`.",
        examples=[True],
    )
    via: VerificationPath = Field(
        default=VerificationPath.GATEWAY,
        description="`gateway` reads through the Zap's /api/modbus/read (works when only "
        "the gateway reaches the device); `direct` connects from the reconciler.",
        examples=["gateway"],
    )


class EnapterKind(StrEnum):
    UCM = "ucm"
    VUCM = "vucm"
    EMBEDDED = "embedded"
    LINK_MASTER = "link_master"
    LINK_SLAVE = "link_slave"
    STANDALONE = "standalone"
    LUA = "lua"


# Kinds Enapter finds by slug within their site (the others by hardware id, or not at all).
SLUG_KEYED = frozenset({EnapterKind.STANDALONE, EnapterKind.LUA})


class EmbeddedType(StrEnum):
    ELECTROLYSER = "ELECTROLYSER"
    DRYER = "DRYER"
    WATER_TANK = "WATER_TANK"


class MqttProtocol(StrEnum):
    MQTT = "MQTT"
    MQTTS = "MQTTS"


class ConfigOutput(StrictModel):
    """Where to write the communication config (credentials) Enapter returns: exactly one of
    a file (written with mode 0600) or a Kubernetes Secret (operator only)."""

    file: str | None = Field(
        default=None,
        description="Path of a file: a relative path is taken under the state directory "
        "(RECONCILER_STATE_DIR) and may not leave it or name one of its own files, an "
        "absolute path as given; a path starting with `~` is refused, not expanded.",
        examples=["secrets/ucm-1.json"],
    )
    # The operator writes the config to this Secret once Enapter issued it: a name the API
    # server refuses would fail that write with the config in hand.
    secret_name: ResourceName | None = Field(
        default=None,
        description="Secret name: lowercase letters, digits, '-' and '.', at most 253 "
        "characters; each part between dots starts and ends with a letter or digit "
        "(Kubernetes object name rules).",
        examples=["ucm-1-config"],
    )

    @field_validator("file")
    @classmethod
    def _a_path_a_file_system_takes(cls, value: str | None) -> str | None:
        """What no file system takes would fail every plan that looks for the file."""
        if value is not None and (problem := path_problem(value)) is not None:
            raise ValueError(f"file {problem}")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ConfigOutput:
        if (self.file is None) == (self.secret_name is None):
            raise ValueError("set exactly one of `file` or `secretName`")
        return self


class EnapterDevice(StrictModel):
    """Registration of the device in Enapter Cloud (API v3 provisioning)."""

    kind: EnapterKind = Field(description="Provisioning kind.", examples=["ucm"])
    embedded_type: EmbeddedType | None = Field(
        default=None, description="For `embedded`: which Enapter device.", examples=["ELECTROLYSER"]
    )
    protocol: MqttProtocol = Field(
        default=MqttProtocol.MQTTS,
        description="MQTT protocol of the device's config.",
        examples=["MQTTS"],
    )
    blueprint_id: Identifier | None = Field(
        default=None,
        description="Blueprint id (Lua devices; changed with assign_blueprint).",
        examples=["bluepri1-50n3-4t9d-e6v0-69i310cb110e"],
    )
    slug: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="Device slug.",
        examples=["gas-sensor-1"],
    )
    runtime_ref: ResourceName | None = Field(
        default=None, description="For `lua`: name of the UCM Device the script runs on."
    )
    master_ref: ResourceName | None = Field(
        default=None, description="For `link_slave`: name of the LINK master Device."
    )
    config_output: ConfigOutput | None = Field(
        default=None, description="Where to write the communication config when one is issued."
    )


class FlatpeakType(StrEnum):
    EV_CHARGER = "EV_CHARGER"
    ELECTRIC_VEHICLE = "ELECTRIC_VEHICLE"
    BATTERY_SYSTEM = "BATTERY_SYSTEM"
    PV_SYSTEM = "PV_SYSTEM"
    OTHER = "OTHER"


class FlatpeakProperties(StrictModel):
    """Device properties Flatpeak uses for tariff-aware control."""

    power_rating_import_kwh: float | None = Field(
        strict=True,
        allow_inf_nan=False,
        default=None, ge=0, description="Import power rating.", examples=[14.2]
    )
    power_rating_export_kwh: float | None = Field(
        strict=True,
        allow_inf_nan=False,
        default=None, ge=0, description="Export power rating.", examples=[7]
    )
    capacity_kwh: float | None = Field(
        strict=True,
        allow_inf_nan=False,
        default=None, ge=0, description="Storage capacity.", examples=[10.0]
    )
    pv_azimuth: float | None = Field(
        strict=True,
        allow_inf_nan=False,
        default=None, ge=0, lt=360, description="PV azimuth, degrees.", examples=[180]
    )
    pv_tilt: float | None = Field(
        strict=True,
        allow_inf_nan=False,
        default=None, ge=0, le=90, description="PV tilt, degrees.", examples=[23]
    )
    pv_terrain_shading: bool | None = Field(
        strict=True,
        default=None, description="PV terrain shading.", examples=[False]
    )
    pv_forecasts_enabled: bool | None = Field(
        strict=True,
        default=None, description="PV forecasts.", examples=[False]
    )
    install_date: str | None = Field(
        default=None,
        pattern=r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}Z)?$",
        description="Installation date: a calendar date (YYYY-MM-DD) or a UTC date and time "
        "(YYYY-MM-DDThh:mm:ssZ). It is sent to Flatpeak as written.",
        examples=["2024-03-22T00:00:00Z"],
    )

    @field_validator("install_date")
    @classmethod
    def _real_date(cls, value: str | None) -> str | None:
        # The pattern fixes the shape; only parsing refuses 2023-13-45 or 24:00:00.
        if value is not None:
            try:
                datetime.fromisoformat(value)
            except ValueError as exc:
                raise ValueError(f"{echo(value)} is not a real date: {exc}") from None
        return value


class FlatpeakDevice(StrictModel):
    """Registration of the device with Flatpeak."""

    reference_id: Identifier = Field(
        min_length=1,
        description="Your reference for the device; its natural key.",
        examples=["home-solna-battery"],
    )
    type: FlatpeakType = Field(description="Flatpeak device type.", examples=["BATTERY_SYSTEM"])
    manufacturer: str | None = Field(
        default=None, description="Manufacturer.", examples=["Sungrow"]
    )
    model_code: str | None = Field(default=None, description="Model code.", examples=["SBR096"])
    model_name: str | None = Field(default=None, description="Model name.", examples=["SBR 9.6"])
    properties: FlatpeakProperties | None = Field(default=None, description="Device properties.")


class DeviceSpec(StrictModel):
    """Desired state of a device."""

    gateway_ref: ResourceName | None = Field(
        default=None, description="Name of the Gateway the device is connected to."
    )
    site_ref: ResourceName | None = Field(
        default=None,
        description="Name of the Site, for devices without a gateway (Enapter UCMs and "
        "standalone devices, Flatpeak-only devices). Must match the gateway's site when both "
        "are set.",
    )
    hardware_id: Identifier | None = Field(
        default=None,
        min_length=1,
        description="Hardware identity: the serial the device reports (the Zap's `sn`), or "
        "the Enapter hardware id. Unique per gateway.",
        examples=["A2231234567"],
    )
    device_type: DeviceType | None = Field(
        default=None, description="Novacore device type; required on a Zap.", examples=["inverter"]
    )
    display_name: DisplayText | None = Field(
        default=None,
        min_length=1,
        description="Name shown in the clouds. Defaults to metadata.name.",
        examples=["Sungrow SH10RT"],
    )
    # Not blank: Novacore refuses an empty manufacturer or model, and a blank one would
    # be accepted here and refused only by the apply that sends it.
    manufacturer: DisplayText | None = Field(
        default=None, min_length=1, description="Manufacturer.", examples=["Sungrow"]
    )
    model: DisplayText | None = Field(
        default=None, min_length=1, description="Model.", examples=["SH10RT"]
    )
    connection: Connection | None = Field(
        default=None, description="How the gateway talks to the device."
    )
    ders: list[DerFields] = Field(
        default_factory=list,
        max_length=MAX_DERS_PER_DEVICE,
        description="DERs this device provides.",
    )
    verification: Verification = Field(
        default_factory=Verification, description="Identity check before provisioning."
    )
    enapter: EnapterDevice | None = Field(default=None, description="Enapter Cloud registration.")
    flatpeak: FlatpeakDevice | None = Field(default=None, description="Flatpeak registration.")
    deletion_policy: DeletionPolicy = Field(
        default=DeletionPolicy.ORPHAN,
        description="`Orphan` (default) leaves the device registered when its resource is "
        "deleted; `Release` removes it from the gateway and the clouds.",
        examples=["Orphan"],
    )


class Device(Resource):
    """A device behind a gateway."""

    KIND = "Device"
    kind: Literal["Device"] = Field(description="Always `Device`.", examples=["Device"])
    spec: DeviceSpec = Field(description="Desired state of the device.")

    @property
    def display_name(self) -> str:
        return self.spec.display_name or self.metadata.name

    @property
    def config_output(self) -> ConfigOutput | None:
        """Where its Enapter communication config is written; None when nowhere (or it is
        no Enapter device)."""
        enapter = self.spec.enapter
        return enapter.config_output if enapter is not None else None

    @property
    def config_secret_name(self) -> str | None:
        """The Secret its Enapter communication config is written to, if one is named."""
        output = self.config_output
        return output.secret_name if output is not None else None

    @property
    def enapter_slug(self) -> str | None:
        """The Enapter slug the device is found by: the declared one, else for standalone and
        Lua devices (keyed by slug) the resource name as a slug; None where Enapter picks.
        Resource names may hold '.', slugs may not."""
        enapter = self.spec.enapter
        if enapter is None:
            return None
        if enapter.slug:
            return enapter.slug
        if enapter.kind in SLUG_KEYED:
            return self.metadata.name.replace(".", "-")[:64].strip("-")
        return None
