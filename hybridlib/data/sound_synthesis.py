"""The procedural event bank of the teaching set: 30 sound classes synthesized with numpy/scipy.

Each class has a synthesis recipe (randomized per instance: pitch, rate, timbre, number of repetitions,
duration) and a vocabulary: its closed-set label (CS tag), caption clauses and noun phrases, the
open-set keywords an uploader might type, and the places where it usually happens.

Four pairs of classes are **acoustic twins**: they share one recipe and its parameter distribution, so
their audio cannot be told apart, while their words differ (``rain`` / ``frying food``, ``car engine`` /
``boat motor``, ``knocking on a door`` / ``hammering``, ``a stream`` / ``a running faucet``). Only metadata
(or the scene's other events) can disambiguate them; see :mod:`hybridlib.data.teaching` for the design.

Recipes return ``(signal float64 [n], count)``; ``count`` is the number of discrete repetitions (barks,
knocks...) for countable classes, else ``None``. Signals are peak-normalized to 1; the mixer sets levels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import signal as sps

SAMPLE_RATE = 44100


# ---------------------------------------------------------------- building blocks
def _t(n: int, sr: int) -> np.ndarray:
    return np.arange(n) / sr


def _noise(rng, n: int) -> np.ndarray:
    return rng.standard_normal(n)


def _band(x: np.ndarray, sr: int, lo: float | None, hi: float | None, order: int = 2) -> np.ndarray:
    """Butterworth band/low/high-pass (zero-phase not needed: these are textures)."""
    nyq = sr / 2
    if lo and hi:
        sos = sps.butter(order, [lo / nyq, min(hi / nyq, 0.99)], btype="band", output="sos")
    elif lo:
        sos = sps.butter(order, lo / nyq, btype="high", output="sos")
    else:
        sos = sps.butter(order, min(hi / nyq, 0.99), btype="low", output="sos")
    return sps.sosfilt(sos, x)


def _env(n: int, sr: int, attack: float, decay: float) -> np.ndarray:
    """Linear attack then exponential decay (time constant ``decay`` seconds)."""
    t = _t(n, sr)
    a = np.clip(t / max(attack, 1e-4), 0, 1)
    return a * np.exp(-np.maximum(t - attack, 0) / max(decay, 1e-4))


def _tone(freq: np.ndarray | float, n: int, sr: int, partials=((1.0, 1.0),), phase0: float = 0.0) -> np.ndarray:
    """Sum of partials ``(ratio, amp)`` of a (possibly time-varying) fundamental, alias-safe."""
    f = np.broadcast_to(np.asarray(freq, dtype=float), (n,))
    phase = 2 * np.pi * np.cumsum(f) / sr + phase0
    out = np.zeros(n)
    for ratio, amp in partials:
        if ratio * float(f.max()) < sr / 2 * 0.95:
            out += amp * np.sin(ratio * phase)
    return out


def _place(events: list[tuple[int, np.ndarray]], n: int) -> np.ndarray:
    """Sum short sounds into a buffer of ``n`` samples at the given start samples."""
    out = np.zeros(n)
    for start, x in events:
        if start >= n:
            continue
        m = min(len(x), n - start)
        out[start:start + m] += x[:m]
    return out


def _impulse_train(rng, n: int, sr: int, rate: float, jitter: float = 1.0) -> np.ndarray:
    """Random (Poisson) impulses with random amplitudes: the skeleton of rain, applause, typing."""
    k = rng.poisson(rate * n / sr)
    pos = rng.integers(0, n, size=k)
    out = np.zeros(n)
    np.add.at(out, pos, rng.uniform(1 - jitter * 0.8, 1.0, size=k))
    return out


def _normalize(x: np.ndarray) -> np.ndarray:
    peak = np.abs(x).max()
    return x / peak if peak > 0 else x


def _rep_starts(rng, count: int, sr: int, gap: tuple[float, float], first: float = 0.0) -> list[int]:
    starts, t = [], first
    for _ in range(count):
        starts.append(int(t * sr))
        t += rng.uniform(*gap)
    return starts


# ---------------------------------------------------------------- recipes
def bird_chirp(rng, sr, max_dur):
    count = int(rng.integers(2, 7))
    f_lo, f_hi = rng.uniform(2000, 3500), rng.uniform(4000, 7000)
    chirps = []
    for start in _rep_starts(rng, count, sr, (0.12, 0.45)):
        n = int(rng.uniform(0.06, 0.2) * sr)
        up = rng.random() < 0.5
        f = np.linspace(f_lo, f_hi, n) if up else np.linspace(f_hi, f_lo, n)
        f = f * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(20, 60) * _t(n, sr)))
        chirps.append((start, _tone(f, n, sr, ((1, 1.0), (2, 0.15))) * np.hanning(n)))
    n = max(s + len(x) for s, x in chirps)
    return _normalize(_place(chirps, n)), count


def dog_bark(rng, sr, max_dur):
    count = int(rng.integers(1, 4))
    f0 = rng.uniform(350, 650)
    barks = []
    for start in _rep_starts(rng, count, sr, (0.3, 0.7)):
        n = int(rng.uniform(0.15, 0.3) * sr)
        f = f0 * np.linspace(1.15, 0.8, n)
        voiced = _tone(f, n, sr, [(k, 1 / k) for k in range(1, 12)])
        voiced = _band(voiced, sr, 500, 2500) + 0.3 * voiced
        x = (voiced + 0.4 * _band(_noise(rng, n), sr, 800, 3000)) * _env(n, sr, 0.01, 0.08)
        barks.append((start, x))
    n = max(s + len(x) for s, x in barks)
    return _normalize(_place(barks, n)), count


def church_bell(rng, sr, max_dur):
    count = int(rng.integers(1, 4))
    f0 = rng.uniform(250, 600)
    partials = [(0.5, 0.6), (1.0, 1.0), (1.19, 0.5), (1.5, 0.4), (2.0, 0.5), (2.52, 0.25), (3.0, 0.2)]
    decay = rng.uniform(1.0, 2.0)
    n1 = int(min(decay * 3, max_dur) * sr)
    strike = _tone(f0, n1, sr, partials) * _env(n1, sr, 0.003, decay)
    hits = [(s, strike) for s in _rep_starts(rng, count, sr, (0.9, 1.6))]
    n = max(s + len(x) for s, x in hits)
    return _normalize(_place(hits, n)), count


def siren(rng, sr, max_dur):
    dur = min(rng.uniform(2.5, 5.0), max_dur)
    n = int(dur * sr)
    t = _t(n, sr)
    if rng.random() < 0.5:  # wail
        f = 950 + 400 * np.sin(2 * np.pi * t / rng.uniform(1.2, 3.0))
    else:  # two-tone
        period = rng.uniform(0.5, 0.9)
        f = np.where((t // (period / 2)) % 2 == 0, rng.uniform(650, 800), rng.uniform(900, 1100))
    x = _tone(f, n, sr, [(1, 1.0), (2, 0.3), (3, 0.15)]) * np.minimum(1, t / 0.2)
    return _normalize(x), None


def engine(rng, sr, max_dur):
    """Shared recipe of the twins ``car engine`` and ``boat motor``."""
    dur = min(rng.uniform(2.5, 7.0), max_dur)
    n = int(dur * sr)
    t = _t(n, sr)
    f0 = rng.uniform(28, 60) * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t))
    x = _tone(f0, n, sr, [(k, 1 / k**0.8) for k in range(1, 24)])
    x *= 1 + 0.5 * np.sin(2 * np.pi * f0.mean() / 2 * t)
    x += 0.5 * _band(_noise(rng, n), sr, None, 400)
    fade = np.minimum(1, np.minimum(t, dur - t) / 0.3)
    return _normalize(x * fade), None


def crackle(rng, sr, max_dur):
    """Shared recipe of the twins ``rain`` and ``frying food``: dense random droplets/sizzles."""
    dur = min(rng.uniform(3.0, 8.0), max_dur)
    n = int(dur * sr)
    t = _t(n, sr)
    drops = _impulse_train(rng, n, sr, rng.uniform(250, 900))
    kernel = _noise(rng, int(0.004 * sr)) * _env(int(0.004 * sr), sr, 0.0002, 0.001)
    x = sps.fftconvolve(drops, kernel)[:n]
    x = _band(x, sr, rng.uniform(1500, 3000), None) + 0.25 * _band(_noise(rng, n), sr, 3000, 12000)
    fade = np.minimum(1, np.minimum(t, dur - t) / 0.4)
    return _normalize(x * fade), None


def wind(rng, sr, max_dur):
    dur = min(rng.uniform(3.0, 8.0), max_dur)
    n = int(dur * sr)
    t = _t(n, sr)
    x = _band(_noise(rng, n), sr, rng.uniform(80, 200), rng.uniform(600, 1200))
    gust = 0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 6.28))
    gust *= 0.8 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.5, 1.2) * t)
    fade = np.minimum(1, np.minimum(t, dur - t) / 0.8)
    return _normalize(x * gust * fade), None


def footsteps(rng, sr, max_dur):
    count = int(rng.integers(3, 9))
    period = 1 / rng.uniform(1.6, 2.3)
    steps = []
    for start in _rep_starts(rng, count, sr, (period * 0.92, period * 1.08)):
        n = int(0.12 * sr)
        thud = _band(_noise(rng, n), sr, 60, rng.uniform(500, 900)) * _env(n, sr, 0.002, 0.03)
        click = _band(_noise(rng, n), sr, 2000, 6000) * _env(n, sr, 0.0005, 0.006)
        steps.append((start, thud + 0.3 * click))
    n = max(s + len(x) for s, x in steps)
    return _normalize(_place(steps, n)), count


def knock(rng, sr, max_dur):
    """Shared recipe of the twins ``knocking on a door`` and ``hammering``: resonant wood impacts."""
    count = int(rng.integers(2, 6))
    modes = rng.uniform(120, 450, size=3)
    period = 1 / rng.uniform(2.5, 6.0)
    hits = []
    for start in _rep_starts(rng, count, sr, (period * 0.9, period * 1.1)):
        n = int(0.15 * sr)
        x = sum(_tone(m, n, sr) * _env(n, sr, 0.001, rng.uniform(0.02, 0.05)) for m in modes)
        x += 0.5 * _band(_noise(rng, n), sr, 1000, 5000) * _env(n, sr, 0.0005, 0.004)
        hits.append((start, x * rng.uniform(0.7, 1.0)))
    n = max(s + len(x) for s, x in hits)
    return _normalize(_place(hits, n)), count


def clock_tick(rng, sr, max_dur):
    dur = min(rng.uniform(3.0, 6.0), max_dur)
    rate = rng.choice([1.0, 2.0, 2.5])
    count = int(dur * rate)
    f_tick, f_tock = rng.uniform(2500, 4000), rng.uniform(1800, 2600)
    ticks = []
    for i, start in enumerate(_rep_starts(rng, count, sr, (1 / rate, 1 / rate))):
        n = int(0.02 * sr)
        f = f_tick if i % 2 == 0 else f_tock
        ticks.append((start, _tone(f, n, sr, [(1, 1), (2.7, 0.5)]) * _env(n, sr, 0.0003, 0.003)))
    n = max(s + len(x) for s, x in ticks)
    return _normalize(_place(ticks, n)), None


def phone_ring(rng, sr, max_dur):
    rings = int(rng.integers(1, 4))
    fa = rng.uniform(380, 480)
    fb = fa * rng.uniform(1.08, 1.2)
    n_on = int(rng.uniform(0.8, 1.4) * sr)
    t = _t(n_on, sr)
    burst = (_tone(fa, n_on, sr, [(1, 1), (3, 0.3)]) + _tone(fb, n_on, sr, [(1, 1), (3, 0.3)]))
    burst *= 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * rng.uniform(15, 25) * t))
    burst *= np.minimum(1, np.minimum(t, t[-1] - t) / 0.01)
    parts = [(s, burst) for s in _rep_starts(rng, rings, sr, (n_on / sr + 1.0, n_on / sr + 2.0))]
    n = max(s + len(x) for s, x in parts)
    return _normalize(_place(parts, n)), rings


def water(rng, sr, max_dur):
    """Shared recipe of the twins ``stream`` and ``running faucet``: noise bed plus bubbles."""
    dur = min(rng.uniform(3.0, 8.0), max_dur)
    n = int(dur * sr)
    t = _t(n, sr)
    bed = _band(_noise(rng, n), sr, rng.uniform(200, 500), rng.uniform(2500, 5000))
    k = rng.poisson(rng.uniform(20, 60) * dur)
    bubbles = []
    for start in rng.integers(0, n, size=k):
        m = int(rng.uniform(0.008, 0.03) * sr)
        f = rng.uniform(500, 2000) * np.linspace(1, 1.6, m)
        bubbles.append((int(start), _tone(f, m, sr) * np.hanning(m) * rng.uniform(0.2, 1)))
    x = bed / (np.abs(bed).max() + 1e-9) + 0.8 * _place(bubbles, n)
    fade = np.minimum(1, np.minimum(t, dur - t) / 0.4)
    return _normalize(x * fade), None


def applause(rng, sr, max_dur):
    dur = min(rng.uniform(2.0, 6.0), max_dur)
    n = int(dur * sr)
    t = _t(n, sr)
    claps = _impulse_train(rng, n, sr, rng.uniform(30, 90))
    m = int(0.012 * sr)
    kernel = _band(_noise(rng, m), sr, 800, 3000) * _env(m, sr, 0.0005, 0.004)
    x = sps.fftconvolve(claps, kernel)[:n]
    shape = np.minimum(1, t / 0.3) * np.minimum(1, (dur - t) / 1.0)
    return _normalize(x * shape), None


def typing(rng, sr, max_dur):
    dur = min(rng.uniform(2.0, 5.0), max_dur)
    n = int(dur * sr)
    keys = _impulse_train(rng, n, sr, rng.uniform(5, 11), jitter=0.5)
    m = int(0.008 * sr)
    kernel = _band(_noise(rng, m), sr, 2500, 8000) * _env(m, sr, 0.0003, 0.0015)
    kernel += 0.4 * _tone(rng.uniform(900, 1400), m, sr) * _env(m, sr, 0.0003, 0.002)
    return _normalize(sps.fftconvolve(keys, kernel)[:n]), None


def plucked_string(rng, sr, max_dur):
    count = int(rng.integers(3, 7))
    root = rng.uniform(110, 330)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    notes = []
    for start in _rep_starts(rng, count, sr, (0.25, 0.6)):
        f = root * 2 ** (rng.choice(scale) / 12)
        n = int(1.2 * sr)
        x = sum(_tone(f * k, n, sr) * np.exp(-_t(n, sr) * (2 + 1.5 * k)) / k for k in range(1, 10))
        notes.append((start, x * np.minimum(1, _t(n, sr) / 0.002)))
    n = max(s + len(x) for s, x in notes)
    return _normalize(_place(notes, n)), None


def thunder(rng, sr, max_dur):
    dur = min(rng.uniform(2.5, 5.0), max_dur)
    n = int(dur * sr)
    t = _t(n, sr)
    rumble = _band(_noise(rng, n), sr, None, rng.uniform(120, 250), order=4)
    rumble *= _env(n, sr, rng.uniform(0.05, 0.4), dur / 3) * (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(1, 3) * t))
    crack = _band(_noise(rng, n), sr, 500, 4000) * _env(n, sr, 0.002, 0.08) * 0.3
    return _normalize(rumble / (np.abs(rumble).max() + 1e-9) + crack), None


def meow(rng, sr, max_dur):
    count = int(rng.integers(1, 3))
    calls = []
    for start in _rep_starts(rng, count, sr, (0.9, 1.5)):
        n = int(rng.uniform(0.5, 0.9) * sr)
        u = np.linspace(0, 1, n)
        f = rng.uniform(450, 700) * (1 + 0.4 * np.sin(np.pi * u))
        bright = _tone(f, n, sr, [(k, 1 / k) for k in range(1, 8)])
        x = _band(bright, sr, 600, 3500) * (1 - 0.6 * u) + 0.3 * bright * u
        calls.append((start, x * np.sin(np.pi * u) ** 0.7))
    n = max(s + len(x) for s, x in calls)
    return _normalize(_place(calls, n)), count


def crickets(rng, sr, max_dur):
    dur = min(rng.uniform(3.0, 7.0), max_dur)
    n = int(dur * sr)
    t = _t(n, sr)
    carrier = _tone(rng.uniform(3800, 5200), n, sr)
    pulse = (np.sin(2 * np.pi * rng.uniform(25, 40) * t) > 0.3).astype(float)
    train = (np.sin(2 * np.pi * rng.uniform(1.5, 3.5) * t) > 0.2).astype(float)
    gate = sps.fftconvolve(pulse * train, np.hanning(int(0.003 * sr)), mode="same")
    return _normalize(carrier * gate), None


def alarm_beeps(rng, sr, max_dur):
    count = int(rng.integers(3, 9))
    f = rng.uniform(1500, 3200)
    on = rng.uniform(0.08, 0.2)
    n_on = int(on * sr)
    beep = np.sign(np.sin(2 * np.pi * f * _t(n_on, sr))) * 0.5 + _tone(f, n_on, sr)
    beep = _band(beep, sr, None, 9000) * np.minimum(1, np.minimum(_t(n_on, sr), on - _t(n_on, sr)) / 0.003)
    gap = on + rng.uniform(0.08, 0.3)
    parts = [(s, beep) for s in _rep_starts(rng, count, sr, (gap, gap))]
    n = max(s + len(x) for s, x in parts)
    return _normalize(_place(parts, n)), None


def car_horn(rng, sr, max_dur):
    count = int(rng.integers(1, 4))
    f0 = rng.uniform(330, 450)
    honks = []
    for start in _rep_starts(rng, count, sr, (0.4, 1.0)):
        n = int(rng.uniform(0.25, 0.9) * sr)
        x = _tone(f0, n, sr, [(k, 1 / k) for k in range(1, 15)])
        x += _tone(f0 * 1.26, n, sr, [(k, 1 / k) for k in range(1, 12)])
        t = _t(n, sr)
        honks.append((start, x * np.minimum(1, np.minimum(t, t[-1] - t) / 0.01)))
    n = max(s + len(x) for s, x in honks)
    return _normalize(_place(honks, n)), count


def whistle(rng, sr, max_dur):
    count = int(rng.integers(4, 9))
    root = rng.uniform(900, 1600)
    pieces = []
    for start in _rep_starts(rng, count, sr, (0.22, 0.45)):
        n = int(rng.uniform(0.2, 0.42) * sr)
        t = _t(n, sr)
        f = root * 2 ** (rng.integers(0, 8) / 12) * (1 + 0.01 * np.sin(2 * np.pi * 6 * t))
        x = _tone(f, n, sr) + 0.05 * _band(_noise(rng, n), sr, 1000, 4000)
        pieces.append((start, x * np.hanning(n)))
    n = max(s + len(x) for s, x in pieces)
    return _normalize(_place(pieces, n)), None


def door_creak(rng, sr, max_dur):
    dur = rng.uniform(0.8, 2.2)
    n = int(dur * sr)
    u = np.linspace(0, 1, n)
    rate = rng.uniform(30, 70) + rng.uniform(20, 60) * np.sin(np.pi * u * rng.uniform(1, 3))
    phase = np.cumsum(rate) / sr
    pulses = (np.diff(np.floor(phase), prepend=0) > 0).astype(float)
    res = sum(_band(pulses, sr, f * 0.9, f * 1.1) for f in rng.uniform(500, 1800, size=3))
    return _normalize(res * np.sin(np.pi * u) ** 0.5), None


def helicopter(rng, sr, max_dur):
    dur = min(rng.uniform(3.0, 8.0), max_dur)
    n = int(dur * sr)
    t = _t(n, sr)
    slap = (np.sin(2 * np.pi * rng.uniform(4.5, 7.5) * t) > 0.6).astype(float)
    slap = sps.fftconvolve(slap, np.hanning(int(0.02 * sr)), mode="same")
    x = _band(_noise(rng, n), sr, 100, 1500) * (0.2 + slap) + 0.3 * _tone(rng.uniform(60, 90), n, sr, [(1, 1), (2, 0.5)])
    approach = np.exp(-((t - rng.uniform(0.3, 0.7) * dur) / (dur / 2.5)) ** 2)
    return _normalize(x * approach), None


def glass_clink(rng, sr, max_dur):
    count = int(rng.integers(1, 5))
    f0 = rng.uniform(2000, 3500)
    pings = []
    for start in _rep_starts(rng, count, sr, (0.15, 0.6)):
        n = int(0.5 * sr)
        x = _tone(f0 * rng.uniform(0.97, 1.03), n, sr, [(1, 1), (2.32, 0.5), (3.9, 0.3)])
        pings.append((start, x * _env(n, sr, 0.0005, rng.uniform(0.08, 0.18))))
    n = max(s + len(x) for s, x in pings)
    return _normalize(_place(pings, n)), count


def cow_moo(rng, sr, max_dur):
    count = int(rng.integers(1, 3))
    calls = []
    for start in _rep_starts(rng, count, sr, (1.6, 2.6)):
        n = int(rng.uniform(1.0, 1.8) * sr)
        u = np.linspace(0, 1, n)
        f = rng.uniform(95, 150) * (1 + 0.25 * np.sin(np.pi * u))
        x = _tone(f, n, sr, [(k, 1 / k**0.7) for k in range(1, 30)])
        x = _band(x, sr, 150, 400 + 900 * u.mean()) + 0.2 * _band(x, sr, 600, 1200)
        calls.append((start, x * np.sin(np.pi * u) ** 0.6))
    n = max(s + len(x) for s, x in calls)
    return _normalize(_place(calls, n)), count


def sawing(rng, sr, max_dur):
    dur = min(rng.uniform(2.0, 5.0), max_dur)
    n = int(dur * sr)
    t = _t(n, sr)
    strokes = np.abs(np.sin(np.pi * rng.uniform(1.5, 3.0) * t)) ** 0.5
    rasp = 0.6 + 0.4 * np.sign(np.sin(2 * np.pi * rng.uniform(90, 200) * t))
    x = _band(_noise(rng, n), sr, rng.uniform(1500, 2500), rng.uniform(5000, 8000)) * strokes * rasp
    return _normalize(x), None


# ---------------------------------------------------------------- vocabulary
@dataclass(frozen=True)
class SoundClass:
    """One event class: recipe and words (clauses are present-tense, so a count word can follow)."""

    name: str
    label: str  # closed-set tag (CS)
    recipe: object
    clauses: tuple[str, ...]  # "a dog barks" (countable classes: "{clause} twice" must read well)
    nouns: tuple[str, ...]  # "a dog barking"
    keywords: tuple[str, ...]  # open-set tags an uploader might type (OS)
    places: tuple[str, ...]
    countable: bool = False
    twin: str | None = None
    extra: dict = field(default_factory=dict)


def _c(name, label, recipe, clauses, nouns, keywords, places, countable=False, twin=None):
    return SoundClass(name, label, recipe, tuple(clauses), tuple(nouns), tuple(keywords), tuple(places),
                      countable, twin)


CLASSES: tuple[SoundClass, ...] = (
    _c("bird", "Bird vocalization", bird_chirp, ["a bird chirps", "a bird sings", "a small bird tweets"],
       ["birds chirping", "a bird singing", "birdsong"], ["bird", "birds", "birdsong", "chirp"],
       ["forest", "park", "farm"]),
    _c("dog", "Dog bark", dog_bark, ["a dog barks", "a dog yaps", "a hound barks"],
       ["a dog barking", "barking"], ["dog", "bark", "barking", "canine"], ["street", "park", "farm", "home"],
       countable=True),
    _c("bell", "Church bell", church_bell, ["a bell rings", "a church bell tolls", "a large bell chimes"],
       ["a bell ringing", "church bells"], ["bell", "bells", "church bell", "chime"], ["church", "street"],
       countable=True),
    _c("siren", "Siren", siren, ["a siren wails", "an emergency siren sounds", "a siren blares"],
       ["a siren", "a wailing siren"], ["siren", "ambulance", "police", "emergency"], ["street"]),
    _c("car_engine", "Car engine", engine, ["a car engine idles", "a car engine rumbles", "a car motor runs"],
       ["an idling car", "a car engine running"], ["car", "engine", "vehicle", "idle"], ["street", "workshop"],
       twin="boat_motor"),
    _c("boat_motor", "Boat motor", engine, ["a boat motor chugs", "a motorboat idles", "a ship's engine rumbles"],
       ["a boat engine", "an idling motorboat"], ["boat", "motorboat", "ship", "outboard"], ["harbor"],
       twin="car_engine"),
    _c("rain", "Rain", crackle, ["rain falls", "rain patters down", "raindrops fall steadily"],
       ["rain falling", "pattering rain"], ["rain", "raindrops", "rainfall", "drizzle"],
       ["forest", "street", "home", "park"], twin="frying"),
    _c("frying", "Frying food", crackle, ["food sizzles in a pan", "oil crackles in a frying pan", "bacon fries"],
       ["food sizzling", "something frying in a pan"], ["frying", "sizzle", "pan", "cooking"], ["kitchen"],
       twin="rain"),
    _c("wind", "Wind", wind, ["the wind blows", "wind gusts", "a strong breeze blows"],
       ["wind blowing", "gusts of wind"], ["wind", "gust", "breeze", "windy"], ["forest", "harbor", "farm", "park"]),
    _c("footsteps", "Footsteps", footsteps, ["someone walks", "footsteps approach", "a person walks slowly"],
       ["footsteps", "someone walking"], ["footsteps", "walking", "steps", "feet"],
       ["street", "home", "office", "church", "park"]),
    _c("knocking", "Knock", knock, ["someone knocks on a door", "a person knocks at the door", "a door is knocked on"],
       ["knocking on a door", "a knock at the door"], ["knock", "knocking", "door", "knocks"], ["home", "office"],
       countable=True, twin="hammering"),
    _c("hammering", "Hammer", knock, ["someone hammers a nail", "a hammer strikes wood", "a person hammers"],
       ["hammering", "a hammer hitting wood"], ["hammer", "hammering", "nail", "carpentry"], ["workshop", "farm"],
       countable=True, twin="knocking"),
    _c("clock", "Clock tick", clock_tick, ["a clock ticks", "a clock is ticking", "a wall clock ticks steadily"],
       ["a ticking clock", "clock ticks"], ["clock", "tick", "ticking", "tock"], ["home", "office", "church"]),
    _c("phone", "Telephone ringing", phone_ring, ["a phone rings", "a telephone rings", "an old phone rings"],
       ["a ringing phone", "a telephone ringing"], ["phone", "telephone", "ring", "ringtone"], ["office", "home"],
       countable=True),
    _c("stream", "Stream", water, ["a stream flows", "a brook babbles", "water trickles in a creek"],
       ["a flowing stream", "a babbling brook"], ["stream", "creek", "brook", "river"], ["forest", "park"],
       twin="faucet"),
    _c("faucet", "Water tap", water, ["a faucet runs", "water runs from a tap", "a tap is left running"],
       ["a running faucet", "water from a tap"], ["faucet", "tap", "sink", "plumbing"], ["kitchen", "home"],
       twin="stream"),
    _c("applause", "Applause", applause, ["a crowd applauds", "people clap", "an audience claps"],
       ["applause", "people clapping"], ["applause", "clapping", "audience", "crowd"], ["church", "park", "office"]),
    _c("typing", "Typing", typing, ["someone types on a keyboard", "a person types", "keys are typed quickly"],
       ["typing on a keyboard", "keyboard clicks"], ["typing", "keyboard", "computer", "keys"], ["office", "home"]),
    _c("guitar", "Guitar", plucked_string, ["a guitar is strummed", "someone plucks a guitar", "a guitar plays"],
       ["a guitar playing", "plucked guitar strings"], ["guitar", "acoustic", "strings", "music"],
       ["park", "home", "street"]),
    _c("thunder", "Thunder", thunder, ["thunder rumbles", "thunder cracks and rolls", "a thunderclap booms"],
       ["thunder rumbling", "a rolling thunderclap"], ["thunder", "storm", "thunderstorm", "rumble"],
       ["forest", "farm", "street", "harbor"]),
    _c("cat", "Meow", meow, ["a cat meows", "a kitten mews", "a cat cries"],
       ["a cat meowing", "meowing"], ["cat", "meow", "kitten", "feline"], ["home", "farm"], countable=True),
    _c("crickets", "Cricket", crickets, ["crickets chirp", "insects chirp", "crickets are chirping"],
       ["crickets chirping", "chirping insects"], ["crickets", "insects", "cricket", "night"],
       ["forest", "farm", "park"]),
    _c("alarm", "Beep", alarm_beeps, ["an alarm beeps", "a timer beeps", "a device beeps repeatedly"],
       ["beeping", "an electronic alarm"], ["beep", "alarm", "timer", "electronic"], ["kitchen", "office", "home"]),
    _c("car_horn", "Vehicle horn", car_horn, ["a car horn honks", "a driver honks", "a horn blares"],
       ["a car horn", "honking"], ["horn", "honk", "car horn", "traffic"], ["street"], countable=True),
    _c("whistle", "Whistling", whistle, ["someone whistles a tune", "a person whistles", "a man whistles"],
       ["whistling", "a whistled melody"], ["whistle", "whistling", "tune", "melody"],
       ["park", "street", "workshop"]),
    _c("door_creak", "Creak", door_creak, ["a door creaks", "a wooden door creaks open", "a hinge squeaks"],
       ["a creaking door", "squeaky hinges"], ["creak", "door", "squeak", "hinge"], ["home", "church"]),
    _c("helicopter", "Helicopter", helicopter, ["a helicopter flies over", "a helicopter passes by",
                                                "a chopper flies overhead"],
       ["a helicopter", "helicopter blades"], ["helicopter", "chopper", "rotor", "aircraft"], ["street", "harbor"]),
    _c("glass", "Glass clink", glass_clink, ["glasses clink", "a glass clinks", "glasses are tapped together"],
       ["glasses clinking", "clinking glass"], ["glass", "clink", "glasses", "toast"], ["kitchen", "home"],
       countable=True),
    _c("cow", "Moo", cow_moo, ["a cow moos", "cattle low", "a cow bellows"],
       ["a cow mooing", "mooing cattle"], ["cow", "moo", "cattle", "livestock"], ["farm"], countable=True),
    _c("sawing", "Sawing", sawing, ["someone saws wood", "a saw cuts through wood", "a hand saw rasps"],
       ["sawing", "a saw cutting wood"], ["saw", "sawing", "wood", "handsaw"], ["workshop", "farm"]),
)

# Places: caption phrases and uploader keywords. The audio carries no place-specific ambience on
# purpose (background noise is drawn independently of the place): the place is metadata-only information,
# apart from what the place-typical events reveal.
PLACES: dict[str, dict[str, tuple[str, ...]]] = {
    "kitchen": {"phrases": ("in a kitchen", "while someone cooks", "in the kitchen"),
                "keywords": ("kitchen", "cooking", "home kitchen")},
    "street": {"phrases": ("on a busy street", "in the city", "downtown"),
               "keywords": ("street", "city", "urban", "traffic")},
    "forest": {"phrases": ("in a forest", "in the woods", "out in nature"),
               "keywords": ("forest", "woods", "nature")},
    "harbor": {"phrases": ("at the harbor", "by the docks", "at a marina"),
               "keywords": ("harbor", "port", "docks", "sea")},
    "workshop": {"phrases": ("in a workshop", "in a garage", "at a work bench"),
                 "keywords": ("workshop", "garage", "diy", "tools")},
    "church": {"phrases": ("in a church", "inside a cathedral", "in a large hall"),
               "keywords": ("church", "cathedral", "hall")},
    "office": {"phrases": ("in an office", "at work", "in a quiet office"),
               "keywords": ("office", "work", "workplace")},
    "park": {"phrases": ("in a park", "outdoors in a park", "in a city park"),
             "keywords": ("park", "outdoors", "garden")},
    "farm": {"phrases": ("on a farm", "in the countryside", "near a barn"),
             "keywords": ("farm", "countryside", "rural", "barn")},
    "home": {"phrases": ("at home", "inside a house", "in a living room"),
             "keywords": ("home", "house", "indoor", "domestic")},
}

# What uploaders add that names no event: recording gear, formats, moods.
DISTRACTOR_KEYWORDS: tuple[str, ...] = (
    "field recording", "zoom h4n", "tascam", "stereo", "binaural", "ambience", "atmosphere", "relaxing",
    "sfx", "sound effect", "foley", "loop", "recording", "mic", "48khz", "calm", "eerie", "daytime",
)


def class_by_name() -> dict[str, SoundClass]:
    return {c.name: c for c in CLASSES}


def keyword_synonym_groups() -> list[tuple[str, ...]]:
    """Groups of interchangeable keywords (each class's and each place's), used by the synonym knob."""
    return [c.keywords for c in CLASSES] + [p["keywords"] for p in PLACES.values()]


def synthesize(sound_class: SoundClass, rng: np.random.Generator, max_dur: float,
               sr: int = SAMPLE_RATE) -> tuple[np.ndarray, int | None]:
    """One randomized instance of ``sound_class`` (peak 1, at most ``max_dur`` seconds)."""
    x, count = sound_class.recipe(rng, sr, max_dur)
    x = np.asarray(x, dtype=np.float64)[: int(max_dur * sr)]
    if not np.isfinite(x).all() or np.abs(x).max() == 0:
        raise RuntimeError(f"recipe of {sound_class.name!r} produced an invalid signal")
    return x, count


def background(rng: np.random.Generator, n: int, sr: int = SAMPLE_RATE) -> tuple[np.ndarray, str]:
    """Low room tone independent of the place: pink-ish, brown-ish or hum (peak-normalized)."""
    kind = str(rng.choice(["pink", "brown", "hum"]))
    white = _noise(rng, n)
    if kind == "pink":
        x = _band(white, sr, 40, 2000, order=1)
    elif kind == "brown":
        x = _band(white, sr, 20, 300, order=2)
    else:
        x = 0.3 * _band(white, sr, 100, 1000) + _tone(rng.choice([50.0, 60.0]), n, sr, [(1, 1), (2, 0.5), (3, 0.3)])
    return _normalize(x), kind
