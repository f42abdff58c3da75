"""Opening a fresh Optuna database from several jobs at once: every job gets a working storage."""

from __future__ import annotations

import threading
from pathlib import Path

import optuna

from mlac.audit.storage import open_storage


def test_concurrent_opens_of_a_fresh_sqlite_storage_all_succeed(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    for round_ in range(4):  # a fresh database each round: the tables are created by whichever thread comes first
        url = f"sqlite:///{tmp_path / f'optuna{round_}.db'}"
        start = threading.Barrier(6)

        def open_one(u: str = url, barrier: threading.Barrier = start) -> None:
            barrier.wait()
            try:
                storage = open_storage(u)
                optuna.create_study(storage=storage, study_name=f"s{threading.get_ident()}")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_one) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(optuna.get_all_study_names(storage=url)) == 6
    assert errors == []
