"""CSV decoding: one strict decision per file, any line ending, errors naming file, line and byte; file-name case."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from hybridlib.data import DatasetError, load_clotho
from hybridlib.data.audiocaps import load_audiocaps
from hybridlib.data.tables import read_csv_rows

COLS = "file_name,caption_1,caption_2,caption_3,caption_4,caption_5"


def _clotho(tmp_path, captions: bytes, metadata: bytes | None = None):
    (tmp_path / "clotho_captions_development.csv").write_bytes(captions)
    if metadata is not None:
        (tmp_path / "clotho_metadata_development.csv").write_bytes(metadata)
    return tmp_path


def test_utf8_file_with_one_stray_latin1_byte_is_refused_naming_line_column_and_byte(tmp_path):
    text = f"{COLS}\na.wav,un café,c2,c3,c4,c5\nb.wav,naïve,c2,c3,c4,c5\n".encode()
    bad = text.replace("naïve".encode(), b"na\xefve")  # one Latin-1 byte in an otherwise UTF-8 file
    _clotho(tmp_path, bad)
    with pytest.raises(DatasetError) as info:
        load_clotho(tmp_path, "development")
    message = str(info.value)
    assert "clotho_captions_development.csv: line 3, column 9" in message and "0xEF" in message
    assert "\n" not in message and "UTF-8" in message


def test_windows_1252_quotes_and_latin1_accents_decode_and_are_reported(tmp_path):
    meta = "file_name,keywords\na.wav,\u201cquoted\u201d;caf\u00e9;en\u2013dash\n".encode("cp1252")
    _clotho(tmp_path, f"{COLS}\na.wav,c1,c2,c3,c4,c5\n".encode(), meta)
    clips = load_clotho(tmp_path, "development")
    assert clips[0].keywords == ["\u201cquoted\u201d", "caf\u00e9", "en\u2013dash"]  # not C1 control characters
    assert any("windows-1252" in note for note in clips.report.notes)
    from hybridlib.data.tables import decode_bytes

    assert decode_bytes("caf\u00e9".encode("iso-8859-1")) == ("caf\u00e9", "windows-1252")


def test_byte_undefined_in_windows_1252_is_refused(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"a,b\nx\x81,y\n")
    with pytest.raises(DatasetError, match=r"x\.csv: line 2, column 2 .*0x81"):
        read_csv_rows(path, ["a"])


@pytest.mark.parametrize("newline", ["\r", "\r\n", "\n"])
def test_any_line_ending(tmp_path, newline):
    body = newline.join([COLS, "a.wav,c1,c2,c3,c4,c5", "b.wav,d1,d2,d3,d4,d5"]) + newline
    clips = load_clotho(_clotho(tmp_path, body.encode()), "development")
    assert [it.clip_id for it in clips] == ["a.wav", "b.wav"] and clips[1].captions[4] == "d5"


def test_unicode_line_separator_inside_a_caption_is_not_a_line_break(tmp_path):
    body = f"{COLS}\na.wav,one\u2028two,c2,c3,c4,c5\n"
    clips = load_clotho(_clotho(tmp_path, body.encode()), "development")
    assert clips[0].captions[0] == "one\u2028two" and len(clips) == 1


def test_malformed_csv_names_file_and_line(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text('a,b\n1,2\n3,"unterminated\n4,5\n')
    with pytest.raises(DatasetError, match=r"x\.csv: line \d+: malformed CSV"):
        read_csv_rows(path, ["a"])


def _wav(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.1 * np.sin(np.arange(4410) / 5.0), 44100, subtype="PCM_16")


def test_file_name_case_mismatch_is_matched_and_reported_not_a_crash(tmp_path):
    _clotho(tmp_path, f"{COLS}\nRain.wav,c1,c2,c3,c4,c5\nWind.WAV,c1,c2,c3,c4,c5\nDup.wav,c1,c2,c3,c4,c5\n".encode())
    _wav(tmp_path / "development" / "rain.wav")
    _wav(tmp_path / "development" / "wind.wav")
    _wav(tmp_path / "development" / "dup.WAV")
    _wav(tmp_path / "development" / "DUP.wav")
    clips = load_clotho(tmp_path, "development")
    by_id = clips.by_id()
    assert by_id["Rain.wav"].audio_path.name == "rain.wav" and by_id["Wind.WAV"].audio_path.name == "wind.wav"
    assert any("2 file name(s) matched on disk only ignoring letter case" in n for n in clips.report.notes)
    assert by_id["Dup.wav"].audio_path is None  # ambiguous: two case variants
    from hybridlib.data.audio_io import screen_audio

    kept = screen_audio(clips, progress=False)
    assert [it.clip_id for it in kept] == ["Rain.wav", "Wind.WAV"]
    assert "DUP.wav, dup.WAV" in kept.report.bad_audio["Dup.wav"]


def test_audiocaps_case_variant_is_named_not_used(tmp_path):
    root = tmp_path / "AUDIOCAPS"
    (root / "csv_files_v1").mkdir(parents=True)
    (root / "csv_files_v1" / "val.csv").write_text(
        "audiocap_id,youtube_id,start_time,caption\n1,AbC,30,a dog barks\n2,xyz,0,rain falls\n")
    _wav(root / "audio_32000Hz" / "val" / "abc_30.flac")
    _wav(root / "audio_32000Hz" / "val" / "xyz_0.flac")
    clips = load_audiocaps(tmp_path, "val")
    assert [it.clip_id for it in clips] == ["xyz_0"]  # YouTube ids are case-sensitive: another video
    assert "another letter case: abc_30.flac" in clips.report.bad_audio["AbC_30"]
