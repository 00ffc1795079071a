"""The session's memory budget for the tests that take GBs (tests/conftest.py ``memory_budget``): a test waits
while the holders in other processes leave no room, goes on when they leave, and a dead holder is dropped."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from conftest import MEMORY_GB


def _ledger() -> Path:
    return Path(os.environ["HYBRIDLIB_TEST_ROOT"]) / "memory-budget.json"


def test_a_test_waits_for_room_and_a_dead_holder_is_dropped(memory_budget, monkeypatch):
    monkeypatch.setenv("HYBRIDLIB_TEST_MEMORY_GB", str(MEMORY_GB["bert-large row"] + 1))
    other = 1  # a live process that is not this one (init) holds a bert-large row
    _ledger().parent.mkdir(parents=True, exist_ok=True)
    _ledger().write_text(json.dumps({str(other): MEMORY_GB["bert-large row"], "999999999": 50.0}))  # + a dead pid
    entered = threading.Event()

    def fine_tune_row():
        with memory_budget("fine-tune row"):
            entered.set()

    worker = threading.Thread(target=fine_tune_row, daemon=True)
    worker.start()
    assert not entered.wait(5)  # 14 + 6 GB > 15 GB: it waits
    held = json.loads(_ledger().read_text())
    assert held == {str(other): MEMORY_GB["bert-large row"]}  # the dead holder went
    _ledger().write_text("{}")  # the bert-large row ended
    assert entered.wait(10)
    worker.join(5)
    assert json.loads(_ledger().read_text()) == {}  # and it released its share
