"""``task_lookup.index_task_parents()``: py-libp2p's service manager finds a new task's parent
from a map, with the same answer as its own walk over the task tree, and a host accepting
connections walks no task tree at all."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from libp2p.tools.anyio_service import Service, background_trio_service
from libp2p.tools.anyio_service.trio_tasks import FunctionTask, TaskType
from support.wt_helpers import LISTEN_V4, client_endpoint, dial_many, packaged_host, wt_addrs

from py_libp2p_webtransport.task_lookup import index_task_parents, walk_for_parent

#: The service's own ``run()``: the manager runs it as a task, the parent of the tasks it starts.
RUN = TaskType.INTERNAL_SERVICE_RUN.value


def test_installs_on_this_py_libp2p() -> None:
    assert index_task_parents()


def tree_tasks(manager: Any) -> dict[trio.lowlevel.Task, Any]:
    """What py-libp2p's walk can find: the tree's FunctionTasks that run, by trio task."""
    return {
        task.trio_task: task
        for task in FunctionTask.iterate_tasks(*manager._root_tasks)
        if task.has_trio_task
    }


class Tree(Service):
    """Tasks that start children from inside themselves, three levels deep, and record what
    both lookups answer for their own trio task."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[Any, Any]] = {}  # name -> (index's task, walk's task)
        self.parents: dict[str, str | None] = {}
        self.release = trio.Event()
        self.started = 0

    async def run(self) -> None:
        self.manager.run_task(self.node, "a", 2, name="a")
        self.manager.run_task(self.node, "b", 1, name="b")
        self.manager.run_daemon_task(self.node, "d", 1, name="d")
        await trio.sleep_forever()

    async def node(self, name: str, depth: int) -> None:
        me = trio.lowlevel.current_task()
        found = self.manager._find_parent_task(me)
        self.answers[name] = (found, walk_for_parent(self.manager, me))
        for i in range(depth):
            self.manager.run_task(self.node, f"{name}{i}", depth - 1, name=f"{name}{i}")
        self.started += 1
        await self.release.wait()
        if name == "d":
            await trio.sleep_forever()  # a daemon task must not return


def names_of(tasks: dict[trio.lowlevel.Task, Any]) -> set[str]:
    return {task.name for task in tasks.values()}


async def wait_for(predicate: Any) -> None:
    with trio.fail_after(10):
        while not predicate():
            await trio.sleep(0.01)


async def test_the_index_answers_what_the_walk_answers_at_every_depth() -> None:
    tree = Tree()
    names = ["a", "a0", "a00", "a1", "a10", "b", "b0", "d", "d0"]
    assert index_task_parents()
    async with background_trio_service(tree) as manager:
        await wait_for(lambda: tree.started == len(names))
        for name in names:
            by_index, by_walk = tree.answers[name]
            assert by_index is by_walk, name
            assert by_index is not None and by_index.name == name, name
        # Each child hangs below the task that started it.
        for name in names:
            task = tree.answers[name][0]
            parent = None if task.parent is None else task.parent.name
            assert parent == (name[:-1] or RUN), name
        # Outside every task of the manager (this test's own trio task): no parent, both ways.
        me = trio.lowlevel.current_task()
        assert manager._find_parent_task(me) is None
        assert walk_for_parent(manager, me) is None
        index = manager.__dict__["_py_libp2p_webtransport_parents"]
        assert index == tree_tasks(manager)

        # The non-daemon tasks end (parents after their children): they leave the map.
        tree.release.set()
        await wait_for(lambda: names_of(tree_tasks(manager)) == {RUN, "d"})
        assert index == tree_tasks(manager)
        manager.cancel()


async def test_a_manager_running_before_the_install_gets_its_map_from_one_walk() -> None:
    tree = Tree()
    async with background_trio_service(tree) as manager:
        await wait_for(lambda: tree.started == 9)
        del manager.__dict__["_py_libp2p_webtransport_parents"]  # as if installed only now
        assert manager._find_parent_task(tree.answers["a0"][0].trio_task).name == "a0"
        assert manager.__dict__["_py_libp2p_webtransport_parents"] == tree_tasks(manager)
        tree.release.set()
        manager.cancel()


async def test_a_host_accepting_connections_walks_no_task_tree(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    walks = 0
    iterate = FunctionTask.iterate_tasks.__func__  # type: ignore[attr-defined]

    def counting_iterate(cls: Any, *tasks: Any) -> Any:
        nonlocal walks
        walks += 1
        return iterate(cls, *tasks)

    async with (
        packaged_host(engine, listen=(LISTEN_V4,)) as host,
        client_endpoint(engine) as endpoint_for,
    ):
        (addr,) = wt_addrs(host)
        network = host.get_network()
        monkeypatch.setattr(FunctionTask, "iterate_tasks", classmethod(counting_iterate))
        conns = await dial_many(endpoint_for, engine, addr, 40)
        await wait_for(lambda: len(network.get_connections()) == 40)
        assert walks == 0
        # The map is what the walk would find: one task per connection, plus the swarm's own.
        monkeypatch.undo()
        index = network.manager.__dict__["_py_libp2p_webtransport_parents"]
        assert index == tree_tasks(network.manager)
        assert len(index) >= 40
        # Closed connections' tasks leave the map with them.
        for conn in conns[:20]:
            await conn.close()
        await wait_for(lambda: len(network.get_connections()) == 20)
        await wait_for(lambda: index == tree_tasks(network.manager))
        assert len(index) >= 20
        for conn in conns[20:]:
            await conn.close()
