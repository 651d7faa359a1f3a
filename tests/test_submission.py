"""Notebook 05's exported code: the centre crops it shows the model, and the file it writes, which the
validator (``catsdogs.validate``) accepts. The validator refuses every file Kaggle would reject or
score wrongly, naming the first bad row; file names give labels and ids the way Kaggle means them.
Property-based (hypothesis)."""
from __future__ import annotations

import string
from pathlib import Path

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from catsdogs.images import CLASSES, image_id, label_from_name, numeric_sort_key
from catsdogs.submission import centre_crop, matched_crop, write_submission
from catsdogs.validate import InvalidSubmission, validate_submission

settings.register_profile("catsdogs", deadline=None, max_examples=100)  # the CPU may be busy training
settings.load_profile("catsdogs")

IDS = [str(i) for i in range(1, 7)]


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("submission") / "submission.csv"


def _write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in [header, *rows]))
    return path


def _rows(**changes) -> list[str]:
    """``id,0.5`` for ids 1..6, with the label (or whole row) of some ids changed."""
    return [changes.get(f"r{i}", f"{i},{changes.get(f'p{i}', '0.5')}") for i in IDS]


@pytest.mark.parametrize("header, rows, message", [
    ("id,prob", _rows(), "the header must be 'id,label', found 'id,prob'"),
    ("", _rows(), "the header must be 'id,label', found ''"),
    ("id,label", _rows()[:-1], "1 test id(s) have no row, the first is '6'"),
    ("id,label", _rows()[:2] + _rows()[3:], "1 test id(s) have no row, the first is '3'"),
    ("id,label", _rows(r4="2,0.5"), "line 5: duplicate id '2'"),
    ("id,label", _rows(r3="99,0.5"), "line 4: unknown id '99' (not a test photo)"),
    ("id,label", _rows(p2="nan"), "line 3: label is NaN for id '2'"),
    ("id,label", _rows(p5="1.5"), "line 6: label 1.5 for id '5' is outside [0, 1]"),
    ("id,label", _rows(p1="-0.01"), "line 2: label -0.01 for id '1' is outside [0, 1]"),
    ("id,label", _rows(p1="inf"), "line 2: label inf for id '1' is outside [0, 1]"),
    ("id,label", _rows(p6="dog"), "line 7: label 'dog' is not a number"),
    ("id,label", _rows(r2="2,0.5,x"), "line 3: expected 2 columns, found 3"),
    ("id,label", _rows(p3="nan", p5="7"), "line 4: label is NaN"),  # the first bad row is named
    ("id,label", _rows(r2="9,0.5", r4="4,2"), "line 3: unknown id '9'"),
], ids=["header", "no-header", "missing-last", "missing-middle", "duplicate", "unknown", "nan", "above-1",
        "below-0", "inf", "not-a-number", "columns", "first-of-two", "first-of-two-kinds"])
def test_each_fault_has_its_own_message(csv_path, header, rows, message):
    with pytest.raises(InvalidSubmission) as err:
        validate_submission(_write(csv_path, header, rows), IDS)
    assert str(err.value).startswith(csv_path.name) and message in str(err.value)


def test_a_valid_file_passes(csv_path):
    assert validate_submission(_write(csv_path, "id,label", _rows(p1="0", p2="1", p3="1e-3")), IDS) == 6


# --- property-based: the validator -----------------------------------------------------------------
probability_text = st.one_of(
    st.floats(0, 1).map(repr), st.floats(0, 1).map(lambda p: f"{p:.6f}"), st.sampled_from(["0", "1", "0.0", "1.0"]))


@st.composite
def submissions(draw) -> tuple[list[str], list[tuple[str, str]]]:
    """Expected ids and a valid file's rows (id, label text), in any order."""
    ids = [str(i) for i in draw(st.sets(st.integers(1, 10**6), min_size=1, max_size=40))]
    rows = [(i, draw(probability_text)) for i in ids]
    return ids, draw(st.permutations(rows))


@given(submissions())
def test_valid_files_always_pass(csv_path, submission):
    ids, rows = submission
    path = _write(csv_path, "id,label", [f"{i},{p}" for i, p in rows])
    assert validate_submission(path, ids) == len(ids) == validate_submission(path)


@given(ids=st.lists(st.integers(1, 10**6), min_size=1, max_size=40, unique=True),
       probs=st.data(), clip=st.sampled_from([0.0, 0.005, 0.05]))
def test_what_write_submission_writes_always_passes(csv_path, ids, probs, clip):
    values = probs.draw(st.lists(st.floats(-1, 2), min_size=len(ids), max_size=len(ids)))
    path = write_submission([str(i) for i in ids], values, csv_path, clip=clip)
    assert validate_submission(path, [str(i) for i in ids]) == len(ids)
    assert [line.split(",")[0] for line in path.read_text().splitlines()[1:]] == [str(i) for i in sorted(ids)]


CORRUPTIONS = ["header", "missing", "duplicate", "unknown", "nan", "range", "not_a_number", "columns"]


@given(submissions(), st.sampled_from(CORRUPTIONS), st.data())
def test_any_single_corruption_is_caught_and_named(csv_path, submission, kind, data):
    ids, rows = submission
    rows = [list(r) for r in rows]
    at = data.draw(st.integers(0, len(rows) - 1), label="row")
    line = at + 2  # line 1 is the header
    header = "id,label"
    if kind == "header":
        header = data.draw(st.sampled_from(["id,prob", "ID,label", "label,id", "id;label", "id", "", "id,label,x"]))
        expected = "the header must be 'id,label'"
    elif kind == "missing":
        gone = rows.pop(at)[0]
        expected = f"the first is {gone!r}"
    elif kind == "duplicate":
        rows.insert(at + 1, [rows[at][0], "0.5"])
        line, expected = at + 3, f"duplicate id {rows[at][0]!r}"
    elif kind == "unknown":
        stranger = data.draw(st.one_of(st.integers(10**6 + 1, 10**9).map(str), st.sampled_from(["abc", "-1", "1.5"])))
        rows[at][0], expected = stranger, f"unknown id {stranger!r}"
    elif kind == "nan":
        rows[at][1], expected = data.draw(st.sampled_from(["nan", "NaN", "-nan", "NAN"])), "label is NaN"
    elif kind == "range":
        value = data.draw(st.one_of(st.floats(min_value=1, exclude_min=True), st.floats(max_value=0, exclude_max=True)))
        rows[at][1], expected = repr(value), "is outside [0, 1]"
    elif kind == "not_a_number":
        rows[at][1] = data.draw(st.sampled_from(["", "abc", "0.5.1", "1e", "--1", "½"]))
        expected = "is not a number"
    else:
        rows[at].append("extra")
        expected = "expected 2 columns, found 3"
    path = _write(csv_path, header, [",".join(r) for r in rows])
    with pytest.raises(InvalidSubmission) as err:
        validate_submission(path, ids)
    assert expected in str(err.value)
    if kind not in ("header", "missing"):
        assert f"line {line}:" in str(err.value)


# --- property-based: file names ---------------------------------------------------------------------
extensions = st.text(string.ascii_letters, min_size=1, max_size=5)
folders = st.sampled_from(["", "train/", "/data/kaggle/train/", "C:/photos/"])


@given(folders, st.sampled_from(CLASSES), st.integers(0, 10**12), extensions)
def test_labelled_names_give_their_class(folder, animal, number, ext):
    assert label_from_name(f"{folder}{animal}.{number}.{ext}") == CLASSES.index(animal)


def _is_labelled(name: str) -> bool:
    """An independent statement of Kaggle's training names: cat|dog, ASCII digits, ASCII letters."""
    parts = name.split(".")
    return (len(parts) == 3 and parts[0] in CLASSES and parts[1] != "" and all(c in string.digits for c in parts[1])
            and parts[2] != "" and all(c in string.ascii_letters for c in parts[2]))


names = st.one_of(
    st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), max_size=20),
    st.builds("{}.jpg".format, st.text("0123456789²٣", min_size=1, max_size=3)),  # "²".isdigit() is True
    st.builds(lambda a, n, e: f"{a}.{n}.{e}", st.sampled_from(["cat", "dog", "Cat", "cats", "bird"]),
              st.text(string.digits + "٣²-+ ", min_size=0, max_size=4), st.text(string.ascii_letters + "1\n", max_size=4)),
)


@given(names)
@example("cat.1.jpg\n")  # `$` would match before a final newline
@example("dog.٣.jpg")  # `\d` would match any Unicode digit
def test_anything_else_is_refused_with_its_name(name):
    if _is_labelled(name):
        assert label_from_name(name) == CLASSES.index(name.split(".")[0])
    else:
        with pytest.raises(ValueError) as err:
            label_from_name(name)
        assert repr(name) in str(err.value)


@given(folders, st.integers(0, 10**12), extensions)
def test_image_id_is_the_number_of_a_test_photo(folder, number, ext):
    assert image_id(f"{folder}{number}.{ext}") == str(number)
    assert numeric_sort_key(f"{folder}{number}.{ext}") == (0, number, "")


@given(st.lists(st.integers(0, 10**9), unique=True), st.lists(names))
@example([2, 10], ["².jpg", "٣.jpg", "x.jpg"])  # "²".isdigit() is True but int("²") fails
def test_numeric_sort_key_orders_numbers_first_by_value_and_never_fails(numbers, others):
    photos = [f"{n}.jpg" for n in numbers]
    others = [name for name in others if name not in photos]
    ordered = sorted(photos + others, key=numeric_sort_key)  # must not raise, whatever the names
    numeric = [name for name in ordered if numeric_sort_key(name)[0] == 0]
    assert [int(image_id(n)) for n in numeric] == sorted(int(image_id(n)) for n in numeric)
    assert ordered[: len(numeric)] == numeric  # numbers first
    assert [n for n in ordered if n in photos] == [f"{n}.jpg" for n in sorted(numbers)]


# --- the centre crops of test-time augmentation ------------------------------------------------------
def test_matched_crop_undoes_the_average_magnification_of_training_crops():
    assert matched_crop((1.0, 1.0)) == 1.0
    assert matched_crop((0.35, 1.0)) == pytest.approx(0.8216, abs=1e-4)
    assert matched_crop((0.08, 1.0)) == pytest.approx(0.7348, abs=1e-4)


def test_centre_crop_keeps_the_middle_of_each_photo_at_full_size():
    images = torch.zeros(2, 3, 100, 100, dtype=torch.uint8)
    images[:, :, 20:80, 20:80] = 200  # a bright square filling the middle 60 % of each side
    assert centre_crop(images, 1.0) is images
    cropped = centre_crop(images, 0.6)
    assert cropped.shape == images.shape and cropped.dtype == torch.uint8
    assert (cropped[..., 5:95, 5:95] == 200).all()  # the square now fills the frame
    assert (centre_crop(images, 0.8)[..., 0, 0] == 0).all()  # a larger crop keeps some border
    with pytest.raises(ValueError, match="fraction in"):
        centre_crop(images, 0.0)
