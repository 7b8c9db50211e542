"""The command line's output details: ids in JSON as strings for users and
items alike, headers over ranked lists, -n 0 as N=0 in the API, the saved
file's settled state in forget --json, help text and plurals."""
import json

import pytest

import fastunlearn
from fastunlearn.cli import main


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Integer ids in the file, so the id maps hold integers."""
    d = tmp_path_factory.mktemp("output")
    rows = [(u, 100 + i) for u in range(1, 21) for i in range(1, 13) if (u + i) % 4]
    (d / "data.csv").write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in rows))
    assert main(["fit", str(d / "data.csv"), "-o", str(d / "model.npz"), "--factors", "4",
                 "--iterations", "3", "--seed", "0", "--quiet"]) == 0
    # user 3 forgotten: the user id map now holds a tombstone (strings)
    assert main(["forget", str(d / "model.npz"), "--users", "3", "-o", str(d / "forgot.npz"),
                 "--quiet"]) == 0
    return d


def cli(capsys, *args):
    capsys.readouterr()
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("model", ["model.npz", "forgot.npz"])
def test_json_ids_are_strings_for_users_and_items(fitted, capsys, model):
    status, out, _ = cli(capsys, "recommend", fitted / model, "--user", "1", "--json")
    got = json.loads(out)
    assert status == 0 and got["user"] == "1" and len(got["results"]) == 3  # 103, 107, 111
    assert all(isinstance(r["item"], str) for r in got["results"])
    status, out, _ = cli(capsys, "similar", fitted / model, "--item", "101", "--json")
    got = json.loads(out)
    assert got["item"] == "101" and all(isinstance(r["item"], str) for r in got["results"])
    assert "101" not in [r["item"] for r in got["results"]]


@pytest.mark.parametrize("command, option", [("recommend", "--user"), ("similar", "--item")])
def test_ranked_lists_have_a_header_and_n_zero_is_an_empty_list(fitted, capsys, command,
                                                                  option):
    query = "1" if command == "recommend" else "101"
    status, out, _ = cli(capsys, command, fitted / "model.npz", option, query, "-n", "3")
    lines = out.splitlines()
    assert status == 0 and lines[0].split() == ["rank", "item", "score"] and len(lines) == 4
    assert [line.split()[0] for line in lines[1:]] == ["1", "2", "3"]
    # N=0 in the API is a valid request for nothing
    model = fastunlearn.load(fitted / "model.npz")
    assert len(model.recommend(0, model.user_items[0], N=0)[0]) == 0
    status, out, _ = cli(capsys, command, fitted / "model.npz", option, query, "-n", "0")
    assert status == 0 and [line.split() for line in out.splitlines()] == [["rank", "item",
                                                                            "score"]]
    status, out, _ = cli(capsys, command, fitted / "model.npz", option, query, "-n", "0",
                         "--json")
    assert json.loads(out)["results"] == []
    status, _, err = cli(capsys, command, fitted / "model.npz", option, query, "-n", "-1")
    assert status == 2 and "-n must be >= 0" in err and "got -1" in err


def test_forget_json_describes_the_saved_file(fitted, capsys):
    """A request left pending by washout=0 is settled before saving: the
    top level says so, as info on the saved file does."""
    (fitted / "pairs.csv").write_text("user,item\n1,101\n")
    status, out, _ = cli(capsys, "forget", fitted / "model.npz", "--pairs", fitted / "pairs.csv",
                         "--washout", "0", "-o", fitted / "settled.npz", "--json")
    got = json.loads(out)
    assert status == 0 and got["settle"] is not None  # it was pending, then settled
    assert got["settled"] is True and got["pending_entries"] == 0
    info = json.loads(cli(capsys, "info", fitted / "settled.npz", "--json")[1])
    assert info["pending"]["entries"] == got["pending_entries"]
    # the settle record of a single request says so in the singular
    text = cli(capsys, "info", fitted / "settled.npz")[1]
    assert "(1 request)" in text and "1 requests" not in text
    assert "pending washout: 0 entries of 0 requests" in " ".join(text.split())


def test_audit_help_has_no_doubled_percent(capsys):
    with pytest.raises(SystemExit):
        from fastunlearn.cli import build_parser
        build_parser().parse_args(["audit", "--help"])
    out = capsys.readouterr().out
    assert "%%" not in out and "20% most active" in " ".join(out.split())
