"""The interactive search box of notebook 08: ipywidgets around :class:`hybridlib.search.Searcher`.

``search_widget(searcher)`` returns a box with a query field (Enter searches), a "hide metadata" toggle (rank by
the audio alone, :mod:`hybridlib.search` defines what that means per fusion) and the top-k results: for each
clip its rank and score, the score's parts as a bar (audio blue, metadata orange), an audio player, the captions
and the keywords. Widgets carry CSS classes (``hybrid-search-query``, ``hybrid-search-audio-alone``,
``hybrid-search-results``, ``hybrid-search-hit``, ``hybrid-search-header``) so a browser test can find them.

Players get a preview of each clip (mono, ``PREVIEW_RATE`` Hz, at most ``PREVIEW_SECONDS`` s, 16-bit WAV) so a
result list stays a few MB however long the recordings are.
"""

from __future__ import annotations

import io
from pathlib import Path

from hybridlib.search import DEFAULT_K, Searcher, SearchHit, SearchResult
from hybridlib.util.errors import UserError
from hybridlib.util.markup import escape_html

PREVIEW_RATE = 16000
PREVIEW_SECONDS = 30.0
PART_COLORS = {"audio": "#1f77b4", "metadata": "#ff7f0e", "bias": "#7f7f7f", "stand-in": "#c7c7c7"}


def audio_preview(path: str | Path, sample_rate: int = PREVIEW_RATE, max_seconds: float = PREVIEW_SECONDS) -> bytes:
    """A clip as WAV bytes for a player: mono, resampled to ``sample_rate``, cut at ``max_seconds``."""
    import soundfile as sf

    from hybridlib.data.audio_io import load_audio

    wave = load_audio(path, sample_rate, allow_silent=True)[: int(max_seconds * sample_rate)]
    buffer = io.BytesIO()
    sf.write(buffer, wave.numpy(), sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def parts_bar(parts: dict[str, float], scale: float, width: int = 160) -> str:
    """An HTML bar of a score's parts: each part's length is ``|value| / scale`` of ``width`` pixels; negative
    parts are hatched."""
    cells = []
    for name, value in parts.items():
        px = max(1, int(round(width * min(1.0, abs(value) / scale)))) if scale > 0 else 1
        color = PART_COLORS.get(name, "#2ca02c")
        style = f"display:inline-block;height:10px;width:{px}px;background:{color};"
        if value < 0:
            style += f"background:repeating-linear-gradient(45deg,{color},{color} 2px,#fff 2px,#fff 4px);"
        cells.append(f'<span title="{escape_html(name)} {value:+.4f}" style="{style}"></span>')
    return "".join(cells)


def hit_html(hit: SearchHit, result: SearchResult, scale: float) -> tuple[str, str]:
    """``(left, right)`` HTML of one hit: rank, score and parts; captions and keywords."""
    parts = " ".join(f'<span style="color:{PART_COLORS.get(k, "#2ca02c")}">{escape_html(k)} {v:+.3f}</span>'
                     for k, v in hit.parts.items())
    left = (f"<b>#{hit.rank}</b> score {hit.score:+.4f}<br>{parts_bar(hit.parts, scale)}<br>"
            f"<small>{parts}</small>")
    if hit.weights is not None:
        left += f"<br><small>weights audio {hit.weights[0]:.2f} / metadata {hit.weights[1]:.2f}</small>"
    captions = "".join(f"<li>{escape_html(c)}</li>" for c in hit.captions)
    right = (f"<b>{escape_html(hit.clip_id)}</b><ul style='margin:2px 0;font-size:90%;line-height:1.25'>"
             f"{captions}</ul>")
    if result.audio_alone:
        right += "<small><i>metadata hidden</i></small>"
    else:
        keywords = escape_html(" · ".join(hit.keywords or [])) or "<i>no keywords</i>"
        right += f"<small><b>keywords:</b> {keywords}</small>"
        if hit.metadata_text and hit.metadata_text != " ".join(hit.keywords or []):
            right += f"<br><small><b>model's metadata input:</b> {escape_html(hit.metadata_text)}</small>"
    return left, right


def search_widget(searcher: Searcher, query: str = "", k: int = DEFAULT_K, audio_alone: bool = False):
    """The search box (see the module docstring); ``query`` is searched right away when given."""
    import ipywidgets as w

    box_query = w.Text(value=query, placeholder="type a query and press Enter", description="query",
                       continuous_update=False, layout=w.Layout(width="60%"))
    box_query.add_class("hybrid-search-query")
    toggle = w.Checkbox(value=audio_alone and searcher.audio_alone_available, indent=False,
                        description="hide metadata: rank by the audio alone",
                        disabled=not searcher.audio_alone_available)
    toggle.add_class("hybrid-search-audio-alone")
    header = w.HTML()
    header.add_class("hybrid-search-header")
    results = w.VBox()
    results.add_class("hybrid-search-results")
    previews: dict[str, bytes] = {}  # a clip's player bytes, read once per widget

    def player(hit: SearchHit):
        if hit.audio_path is None:
            return w.HTML("<i>no audio file</i>")
        if hit.clip_id not in previews:
            previews[hit.clip_id] = audio_preview(hit.audio_path)
        return w.Audio(value=previews[hit.clip_id], format="wav", autoplay=False, controls=True,
                       layout=w.Layout(width="260px"))

    def refresh(_change=None):
        text = box_query.value.strip()
        if not text:
            header.value = "<i>Type a query and press Enter.</i>"
            results.children = ()
            return
        try:
            result = searcher.search(text, k=k, audio_alone=toggle.value)
        except UserError as exc:
            header.value = f"<b>error:</b> {escape_html(str(exc))}"
            results.children = ()
            return
        scale = max([sum(abs(v) for v in h.parts.values()) for h in result.hits] + [1e-9])
        header.value = f"<b>{escape_html(result.describe())}</b>"
        rows = []
        for hit in result.hits:
            left, right = hit_html(hit, result, scale)
            row = w.HBox([w.HTML(left, layout=w.Layout(width="250px")), player(hit),
                          w.HTML(right, layout=w.Layout(width="55%"))],
                         layout=w.Layout(border_bottom="1px solid #ddd", padding="4px 0"))
            row.add_class("hybrid-search-hit")
            rows.append(row)
        results.children = tuple(rows)

    box_query.observe(refresh, names="value")
    toggle.observe(refresh, names="value")
    note = w.HTML(f"<small>Audio alone: {escape_html(searcher.audio_alone_meaning)}. Rank: pessimistic, as the "
                  "metrics count it (tied clips share the worst rank of their group).</small>")
    refresh()
    return w.VBox([w.HBox([box_query, toggle]), note, header, results])
