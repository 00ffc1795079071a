"""The audio-screening options shared by the commands that read audio (extract, train, evaluate, make-teaching-set)."""

from __future__ import annotations

from hybridlib.data.audio_io import AUDIO_CHECKS, BAD_AUDIO_POLICIES


def add_audio_arguments(parser, defaults_from_config: bool = True, check: bool = True) -> None:
    """``--audio-check {header,full}`` (with ``check``) and ``--bad-audio {exclude,error}`` (None: the
    config's value, or the defaults full / exclude)."""
    where = "the config's audio_check (full)" if defaults_from_config else "full"
    if check:
        parser.add_argument(
            "--audio-check", choices=AUDIO_CHECKS, default=None,
            help=f"how audio is checked before use: 'full' decodes every file once (finds silent, "
                 f"NaN and undecodable files), 'header' reads headers only (default: {where})")
    where = "the config's bad_audio (exclude)" if defaults_from_config else "exclude"
    parser.add_argument("--bad-audio", choices=BAD_AUDIO_POLICIES, default=None,
                        help=f"what to do with clips whose audio is missing or unusable: 'exclude' them and "
                             f"list them in the report, or stop with an 'error' naming them all (default: {where})")
