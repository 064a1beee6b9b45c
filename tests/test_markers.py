"""util/markers.py against packaging's own evaluator, on every marker LeRobot's metadata uses and more."""
from __future__ import annotations

import pytest
from packaging.markers import Marker

from mimic_deployment.util import markers

CASES = [
    'extra == "pi"', 'extra == "Transformers_Dep"', 'sys_platform == "win32" and extra == "dataset"',
    'sys_platform != "darwin" and extra == "intelrealsense"',
    '(sys_platform == "linux" and (platform_machine == "aarch64" or platform_machine == "arm64")) '
    'and extra == "dataset"',
    '(platform_machine == "AMD64" or platform_machine == "x86_64") and extra == "groot"',
    '((sys_platform == "linux" and (platform_machine == "x86_64" or platform_machine == "AMD64")) or '
    '(sys_platform == "darwin" and platform_machine == "arm64")) and extra == "dataset"',
    'python_version >= "3.12"', 'python_version < "3.10" or extra == "test"', "python_full_version != '3.12.1'",
    '"linux" in sys_platform', '"arm" not in platform_machine', 'platform_system == "Linux"',
    'implementation_name == "cpython" and os_name == "posix"',
]


@pytest.mark.parametrize("marker", CASES)
@pytest.mark.parametrize("extra", ["pi", "transformers-dep", "dataset", "groot", "test", "intelrealsense"])
def test_the_same_answer_as_packaging(marker, extra):
    values = {**markers.environment(), "extra": extra}
    assert markers.holds(marker, values) == Marker(marker).evaluate({"extra": extra}), marker


def test_an_engines_python_version_decides_not_the_toolkits():
    assert markers.holds('python_version < "3.12"', markers.environment("3.11"))
    assert not markers.holds('python_version < "3.12"', markers.environment("3.12"))


def test_what_it_cannot_parse_goes_to_packaging():
    values = {**markers.environment(), "extra": "pi"}
    for marker in ('python_version ~= "3.10"', 'python_full_version === "3.12.1"'):
        assert markers.holds(marker, values) == Marker(marker).evaluate(), marker
    assert markers.holds("not a marker", values) is False
