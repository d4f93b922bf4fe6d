"""Number and boolean fields take only what YAML reads as a number or a boolean: a boolean
(`true`, `yes`, `off`) is not a port, text in quotes is not a number, a number is not a
boolean; identifiers carry no surrounding spaces and display names are not blank. Each
refusal is located and says what YAML read and what to write instead."""

from __future__ import annotations

import pytest

from reconciler.printable import echo
from reconciler.sources import loader

AV = "apiVersion: energy.reconciler.dev/v1alpha1"
SITE = f"""{AV}
kind: Site
metadata:
  name: home
spec:
  displayName: Home
  timezone: Europe/Stockholm
  novacore:
    orgId: org-4f2a9c71
  location:
    latitude: LATITUDE
    longitude: 18.0
---
{AV}
kind: Gateway
metadata:
  name: home-zap
spec:
  siteRef: home
  zap:
    serial: zap-3c61a4f0b2d8e917
    url: http://192.168.1.40
---
{AV}
kind: Device
metadata:
  name: inverter
spec:
  gatewayRef: home-zap
  hardwareId: A2231234567
  deviceType: inverter
  connection:
    modbusTcp:
      host: 192.168.1.60
      profile: sungrow
      port: PORT
      unitId: UNIT
  ders:
    - name: pv
      type: solar
      publish: PUBLISH
"""
FIELDS = {
    "LATITUDE": (11, 15, "spec.location.latitude", "59.36"),
    "PORT": (36, 13, "spec.connection.modbusTcp.port", "502"),
    "UNIT": (37, 15, "spec.connection.modbusTcp.unitId", "1"),
    "PUBLISH": (41, 16, "spec.ders[0].publish", "true"),
}


def load(**values: str) -> list[str]:
    text = SITE
    for placeholder, (*_, default) in FIELDS.items():
        text = text.replace(placeholder, values.get(placeholder.lower(), default))
    return [str(d) for d in loader.load_texts([("d.yaml", text)]).diagnostics]


def where(placeholder: str) -> str:
    line, column, path, _ = FIELDS[placeholder]
    return f"d.yaml:{line}:{column}: {path}:"


BOOLEAN = "YAML reads this value as a boolean (true, false, yes, no, on and off are booleans)"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("port", "true", f"expected a whole number, but {BOOLEAN}"),
        ("port", "yes", f"expected a whole number, but {BOOLEAN}"),
        ("port", '"502"', "expected a whole number, but the quotes make this value text; "
                          "remove them"),
        ("port", "http", "expected a whole number, not the text 'http'"),
        ("port", "502.5", "expected a whole number, not 502.5"),
        ("unit", "false", f"expected a whole number, but {BOOLEAN}"),
        ("latitude", "true", f"expected a number, but {BOOLEAN}"),
        ("latitude", "'59.3'", "expected a number, but the quotes make this value text; "
                               "remove them"),
        ("latitude", ".nan", "expected a number, but YAML reads this value as .nan or .inf; "
                             "write a number"),
        ("publish", "1", "expected true or false, but YAML reads this value as a number"),
        ("publish", "'no'", "expected true or false, but the quotes make this value text; "
                            "remove them"),
        ("publish", "sometimes", "expected true or false, not the text 'sometimes'"),
        # A whole number past what a float holds (hex is read whatever its length).
        ("latitude", "0x" + "f" * 300, "expected a number, but this one (1,200 bits) is too "
                                       "large to hold: a number is at most about 1.8e308"),
        # Text that YAML would not read as a number: too long, or nested too deeply.
        ("port", f'"{"9" * 5000}"', f"expected a whole number, not the text {echo('9' * 5000)}"),
        ("port", f'"{"[" * 5000}{"]" * 5000}"',
         f"expected a whole number, not the text {echo('[' * 5000 + ']' * 5000)}"),
    ],
)
def test_a_value_of_the_wrong_yaml_type_is_refused(field: str, value: str, message: str) -> None:
    # (an invalid Site also makes its Gateway's siteRef point at an invalid document)
    assert load(**{field: value})[:1] == [f"{where(field.upper())} {message}"]


@pytest.mark.parametrize("field", ["latitude", "port", "publish"])
def test_a_number_too_long_to_read_is_located_not_a_traceback(field: str) -> None:
    """Python reads no integer of more than 4,300 digits: said where it is written (the
    field named as a validation error names it), with what to write instead (it may be
    text meant, as in a label)."""
    line, column, path, _ = FIELDS[field.upper()]
    assert load(**{field: "9" * 5000})[:1] == [
        f"d.yaml:{line}:{column}: {path}: a number of more than 4,300 digits, too long to read; "
        "write a number of a few digits, or put it in quotes if it is text"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("port", "0x1F6"), ("latitude", "59"), ("latitude", "-0.5"), ("publish", "no"),
     ("publish", "off"), ("unit", "0")],
)
def test_numbers_and_booleans_as_yaml_reads_them_are_accepted(field: str, value: str) -> None:
    assert load(**{field: value}) == []


def test_an_impossible_install_date_is_refused_where_it_is_written() -> None:
    text = SITE.split("---\n")[0].replace("LATITUDE", "59.36") + """---
apiVersion: energy.reconciler.dev/v1alpha1
kind: Device
metadata:
  name: battery
spec:
  siteRef: home
  flatpeak:
    referenceId: home-battery
    type: BATTERY_SYSTEM
    properties:
      installDate: 2023-13-45
"""
    novacore = "  novacore:\n    orgId: org-4f2a9c71\n"
    site = text.replace(novacore, "  flatpeak:\n    locationId: l\n")
    problems = [str(d) for d in loader.load_texts([("d.yaml", site)]).diagnostics]
    assert problems == ["d.yaml:24:20: spec.flatpeak.properties.installDate: '2023-13-45' is not "
                        "a real date: month must be in 1..12"]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("hardwareId: A2231234567", 'hardwareId: " A2231234567"',
         "d.yaml:30:15: spec.hardwareId: ' A2231234567' has spaces (or other white space) at "
         "its start or end; an identifier is matched exactly, so remove them"),
        ("orgId: org-4f2a9c71", "orgId: 'org-4f2a9c71 '",
         "d.yaml:9:12: spec.novacore.orgId: 'org-4f2a9c71 ' has spaces"),
        ("displayName: Home", 'displayName: "   "',
         "d.yaml:6:16: spec.displayName: must not be blank"),
    ],
)
def test_identifiers_with_surrounding_space_and_blank_names_are_refused(
    old: str, new: str, expected: str
) -> None:
    text = SITE.replace("LATITUDE", "59.36").replace("PORT", "502").replace("UNIT", "1")
    text = text.replace("PUBLISH", "true").replace(old, new)
    problems = [str(d) for d in loader.load_texts([("d.yaml", text)]).diagnostics]
    assert problems[0].startswith(expected), problems
