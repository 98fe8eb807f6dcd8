"""py-libp2p's service manager finds a new task's parent without walking every task.

py-libp2p 0.8's ``TrioManager.run_task`` gives each new task a parent: the ``FunctionTask`` the
calling trio task runs, found by walking the manager's whole task tree
(``TrioManager._find_parent_task``). A host's swarm keeps one task per open connection and calls
``run_task`` twice per new connection (``Swarm.add_conn``), so each accept walks every other
connection's task: accepting 3,000 connections under cProfile, that walk was 38 % of the host's
CPU (see the README's scale table). ``index_task_parents()`` keeps, per manager, a map from
each trio task that runs one of its ``FunctionTask``s to that task, filled and emptied where the
manager runs its tasks (``_run_and_manage_task``), and answers from it the parent the walk
would find.

Why it is the same answer: the walk yields the tree's ``FunctionTask``s whose trio task is set,
and a ``FunctionTask``'s trio task is the one that runs ``_run_and_manage_task`` for it (its
``run()`` is awaited there). A task leaves the map when that trio task is done with it, and
between leaving the tree and that moment its trio task calls no ``run_task``. ``tests/libp2p/
test_task_lookup.py`` checks the two answers are equal on nested task trees.

It patches the class, so it holds for every py-libp2p service of the process from then on;
managers already running get their map from one walk. ``new_host()`` (``host.py``) installs it;
call it yourself for a host built with ``libp2p.new_host``.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

__all__ = ["index_task_parents", "walk_for_parent"]

logger = logging.getLogger(__name__)

#: The manager attribute holding its map (trio task -> FunctionTask).
_INDEX = "_py_libp2p_webtransport_parents"

_installed = False
_walk: Any = None  # py-libp2p's own _find_parent_task, kept for walk_for_parent()


def index_task_parents() -> bool:
    """Install the O(1) parent lookup (once per process); False when this py-libp2p lacks the
    private methods it replaces (nothing is changed then: only slower)."""
    global _installed, _walk
    if _installed:
        return True
    try:
        from libp2p.tools.anyio_service.trio_manager import TrioManager
        from libp2p.tools.anyio_service.trio_tasks import FunctionTask
    except ImportError:
        logger.debug("py-libp2p has no TrioManager: parent lookup left as it is")
        return False
    walk = TrioManager.__dict__.get("_find_parent_task")
    run_and_manage = TrioManager.__dict__.get("_run_and_manage_task")
    if walk is None or run_and_manage is None or not hasattr(FunctionTask, "iterate_tasks"):
        logger.warning("this py-libp2p's TrioManager has no parent walk to index: left as it is")
        return False

    def index_of(manager: Any) -> dict[trio.lowlevel.Task, Any]:
        index: dict[trio.lowlevel.Task, Any] | None = manager.__dict__.get(_INDEX)
        if index is None:  # a manager that ran tasks before the install: one walk
            index = {
                task.trio_task: task
                for task in FunctionTask.iterate_tasks(*manager._root_tasks)
                if task.has_trio_task
            }
            setattr(manager, _INDEX, index)
        return index

    def find_parent_task(self: Any, trio_task: trio.lowlevel.Task) -> Any:
        return index_of(self).get(trio_task)

    async def run_and_manage_task(self: Any, task: Any) -> None:
        index = index_of(self)
        me = trio.lowlevel.current_task()
        if isinstance(task, FunctionTask):
            index[me] = task  # task.run() sets task.trio_task to this same trio task
        try:
            await run_and_manage(self, task)
        finally:
            if index.get(me) is task:
                del index[me]

    TrioManager._find_parent_task = find_parent_task  # type: ignore[method-assign]
    TrioManager._run_and_manage_task = run_and_manage_task  # type: ignore[method-assign]
    _walk = walk
    _installed = True
    return True


def walk_for_parent(manager: Any, trio_task: trio.lowlevel.Task) -> Any:
    """The parent py-libp2p's own walk finds (for tests that compare the two answers)."""
    if _walk is None:
        return manager._find_parent_task(trio_task)
    return _walk(manager, trio_task)
