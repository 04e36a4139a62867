import os

import pytest

from shared.errors import NotFound, PathOutsideRoot
from shared.storage import list_files, safe_resolve, stage_dir_rel


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "root"
    (root / "jobs" / "j1").mkdir(parents=True)
    (root / "jobs" / "j1" / "a.txt").write_text("hello")
    (tmp_path / "secret.txt").write_text("secret")
    return root


def test_resolves_inside(root):
    assert safe_resolve(root, "jobs/j1/a.txt") == (root / "jobs" / "j1" / "a.txt").resolve()


@pytest.mark.parametrize(
    "attack",
    [
        "../secret.txt",
        "jobs/../../secret.txt",
        "/etc/passwd",
        "%2e%2e/secret.txt",
        "%252e%252e/secret.txt",
        "..%2fsecret.txt",
        "jobs\\..\\..\\secret.txt",
        "~/secret.txt",
        "C:/Windows/win.ini",
        "a.txt\x00.png",
        "jobs/%00",
    ],
)
def test_refuses_escapes(root, attack):
    with pytest.raises(PathOutsideRoot):
        safe_resolve(root, attack)


def test_refuses_symlink_out_of_root(root, tmp_path):
    os.symlink(tmp_path / "secret.txt", root / "jobs" / "j1" / "link.txt")
    os.symlink(tmp_path, root / "jobs" / "dirlink")
    with pytest.raises(PathOutsideRoot):
        safe_resolve(root, "jobs/j1/link.txt")
    with pytest.raises(PathOutsideRoot):
        safe_resolve(root, "jobs/dirlink/secret.txt")


def test_symlink_inside_root_is_fine(root):
    os.symlink(root / "jobs" / "j1" / "a.txt", root / "jobs" / "alias.txt")
    assert safe_resolve(root, "jobs/alias.txt").read_text() == "hello"


def test_missing_is_not_found_and_empty_is_refused(root):
    with pytest.raises(NotFound):
        safe_resolve(root, "jobs/j1/missing.txt")
    assert safe_resolve(root, "jobs/j1/new.txt", must_exist=False).name == "new.txt"
    with pytest.raises(PathOutsideRoot):
        safe_resolve(root, "  ")


def test_list_files_skips_links_out_of_root(root, tmp_path):
    (root / "jobs" / "j1" / "sub").mkdir()
    (root / "jobs" / "j1" / "sub" / "b.bin").write_bytes(b"12345")
    os.symlink(tmp_path / "secret.txt", root / "jobs" / "j1" / "leak.txt")
    files = list_files(root, "jobs/j1")
    assert [(f.path, f.size) for f in files] == [("a.txt", 5), ("sub/b.bin", 5)]
    assert list_files(root, "jobs/none") == []


def test_stage_dir_layout():
    assert stage_dir_rel("abc", 0, "train") == "jobs/abc/01-train"
    assert stage_dir_rel("abc", 11, "evaluate") == "jobs/abc/12-evaluate"


def test_unusable_paths_are_400_not_500(tmp_path):
    from shared.errors import UnusablePath

    with pytest.raises(UnusablePath, match="cannot be looked up"):
        safe_resolve(tmp_path, "a" * 5000)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(PathOutsideRoot):
        safe_resolve(tmp_path, "loop/x")
