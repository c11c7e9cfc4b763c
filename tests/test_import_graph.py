"""No import circles between the modules of upgrade_server.

Every import counts, a function's too: an import moved into a function to
dodge a circular import at load time still ties the two modules together.
A lower domain tells the ones above it what changed through
upgrade_server.events instead of importing them.
"""

from __future__ import annotations

import grimp


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The import cycles, each as a module chain that starts and ends with the
    same module; a cycle through modules all named by an earlier one is left out."""
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is None:
                continue
            cycle = [importer, *back]
            members = frozenset(cycle)
            if not any(members <= group for group in seen):
                seen.add(members)
                found.append(cycle)
    return found


def test_the_package_has_no_import_cycle():
    graph = grimp.build_graph("upgrade_server", cache_dir=None)
    cycles = _cycles(graph)
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_a_cycle_is_named_as_its_module_chain():
    graph = grimp.ImportGraph()
    for module in ("pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.d"):
        graph.add_module(module)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.c")
    graph.add_import(importer="pkg.c", imported="pkg.a")
    graph.add_import(importer="pkg.c", imported="pkg.d")

    assert _cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]
