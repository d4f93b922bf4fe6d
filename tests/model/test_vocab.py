"""The device/DER vocabularies and the single local <-> cloud DER-name mapping
(`reconciler.model.vocab`), checked against the tables of platform-apis §1.2, §1.4 and §6."""

from __future__ import annotations

import re

import pytest

from reconciler.model import vocab
from reconciler.model.vocab import DerType, DeviceType

# Novacore "device_type -> allowed DER types" (platform-apis §1.4), written out by hand so
# that a change to the table in the code has to be made twice, on purpose.
NOVACORE_TABLE = {
    "inverter": {"solar", "battery", "meter"},
    "battery": {"battery", "meter"},
    "ev_charger": {"ev_charger_port"},
    "v2x_charger": {"ev_charger_port"},
    "energy_meter": {"meter"},
}


@pytest.mark.parametrize(
    ("cloud", "local"),
    [
        pytest.param("solar", "pv", id="solar-is-pv-locally"),
        pytest.param("battery", "battery", id="battery-same-name"),
        pytest.param("meter", "meter", id="meter-same-name"),
        pytest.param("ev_charger_port", "v2x_charger", id="ev-port-is-v2x-charger-locally"),
    ],
)
def test_der_names_translate_both_ways(cloud: str, local: str) -> None:
    assert vocab.local_der_type(cloud) == local
    assert vocab.local_der_type(DerType(cloud)) == local
    assert vocab.cloud_der_type(local) == DerType(cloud)
    assert vocab.is_local_der_type(local)


def test_every_cloud_der_type_round_trips_through_the_local_name() -> None:
    for der_type in DerType:
        assert vocab.cloud_der_type(vocab.local_der_type(der_type)) is der_type


def test_local_names_are_exactly_the_zap_vocabulary() -> None:
    local_names = {vocab.local_der_type(t) for t in DerType}
    assert local_names == {"pv", "battery", "meter", "v2x_charger"}
    for local in local_names:
        assert vocab.local_der_type(vocab.cloud_der_type(local)) == local


@pytest.mark.parametrize("name", ["solar", "ev_charger_port", "inverter", "PV", ""])
def test_cloud_or_unknown_names_are_not_local_names(name: str) -> None:
    assert not vocab.is_local_der_type(name)
    with pytest.raises(KeyError):
        vocab.cloud_der_type(name)


def test_unknown_cloud_type_is_rejected() -> None:
    with pytest.raises(ValueError, match="'pv' is not a valid DerType"):
        vocab.local_der_type("pv")


def test_allowed_der_types_match_the_novacore_table() -> None:
    table = {str(d): {str(t) for t in vocab.allowed_der_types(d)} for d in DeviceType}
    assert table == NOVACORE_TABLE


def test_zap_device_types_are_the_novacore_device_types() -> None:
    assert frozenset(NOVACORE_TABLE) == vocab.ZAP_DEVICE_TYPES


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        pytest.param("pv-array", True, id="dash"),
        pytest.param("battery_1", True, id="underscore"),
        pytest.param("A" * 64, True, id="64-chars"),
        pytest.param("A" * 65, False, id="65-chars"),
        pytest.param("pv array", False, id="space"),
        pytest.param("pv.array", False, id="dot"),
        pytest.param("", False, id="empty"),
        pytest.param("solpaneler-å", False, id="non-ascii"),
    ],
)
def test_der_name_pattern(name: str, valid: bool) -> None:
    assert (re.fullmatch(vocab.DER_NAME_PATTERN, name) is not None) is valid
