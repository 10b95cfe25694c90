"""Hostlist expressions as Slurm writes them in ``nodes``."""

import pytest

from schemas.hostlist import HostlistError, compress_hostlist, expand_hostlist


def test_expand_real_cscs_nodelist() -> None:
    assert expand_hostlist("nid[001002,001004,001012,001014]") == [
        "nid001002",
        "nid001004",
        "nid001012",
        "nid001014",
    ]


def test_expand_ranges_and_plain_names() -> None:
    assert expand_hostlist("cn[001-003,007],login1") == [
        "cn001",
        "cn002",
        "cn003",
        "cn007",
        "login1",
    ]
    assert expand_hostlist(None) == []
    assert expand_hostlist("jg") == ["jg"]


def test_compress_round_trips() -> None:
    hosts = ["cn001", "cn002", "cn003", "cn007", "gn01", "login1"]
    assert compress_hostlist(hosts) == "cn[001-003,007],gn01,login1"
    assert expand_hostlist(compress_hostlist(hosts)) == hosts


@pytest.mark.parametrize("bad", ["cn[1-", "cn]1[", "cn[3-1]", "cn[a-b]", "n[0-99999999]"])
def test_bad_hostlists_raise_with_the_expression(bad: str) -> None:
    with pytest.raises(HostlistError):
        expand_hostlist(bad)
