"""``python -m dbm`` commands."""
from dbm import cli


def test_estimators_listed(capsys):
    assert cli.main(["estimators"]) == 0
    out = capsys.readouterr().out
    for name in ("cd", "pcd", "ucd-gibbs", "ucd-mh-lmi", "official-single-chain"):
        assert name in out


def test_check_reports_z(capsys):
    assert cli.main(["check", "--chains", "2000", "--options", '{"marginalize": true}']) == 0
    assert "max |z|" in capsys.readouterr().out
