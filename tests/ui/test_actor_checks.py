"""Every piece of page code that runs without app.py's login gate checks the sign-in itself.

A fragment (``@st.fragment``, ``@st.dialog``) is rerun alone by its own widgets, its timer or a
message replayed on the websocket: app.py and the page script above it do not run, and after a
logout in the same tab the sign-in page's ``st.stop()`` leaves the old fragments registered. A widget
or component callback (``on_click``, ``on_change``, ``on_<state>_change``, a callable ``on_select``)
runs before any script. So each must begin by resolving the signed-in user from the database through
the one helper, ``ui.session.session_actor``, and act as that user, never as the page's ``actor``
captured when the page last ran. This test walks pages/ and ui/ by their syntax tree, so a fragment
or callback added later without the check fails it.
"""

from __future__ import annotations

import ast
import re
import textwrap

from tests.helpers import ROOT

CHECK = "session_actor"
FRAGMENT_DECORATORS = {"fragment", "experimental_fragment", "dialog", "experimental_dialog"}
CALLBACK_KEYWORD = re.compile(r"^on_(click|change|submit|select|.+_change)$")


def _called_name(node: ast.expr) -> str | None:
    """`st.fragment` and `fragment` are both "fragment"; `st.fragment(run_every=2)` too."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _body(function: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> list[ast.stmt]:
    if isinstance(function, ast.Lambda):
        return [ast.Expr(function.body)]
    body = list(function.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return body


def _starts_with_check(function: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> bool:
    body = _body(function)
    if not body:
        return False
    first = body[0]
    value = first.value if isinstance(first, ast.Expr | ast.Assign | ast.AnnAssign) else None
    return isinstance(value, ast.Call) and _called_name(value.func) == CHECK


def _page_actors(tree: ast.Module) -> set[str]:
    """Module-level names bound to ``session_actor(...)``: the user as of the page's last full run."""
    names = set()
    for statement in tree.body:
        if not isinstance(statement, ast.Assign) or not isinstance(statement.value, ast.Call):
            continue
        if _called_name(statement.value.func) == CHECK:
            names.update(target.id for target in statement.targets if isinstance(target, ast.Name))
    return names


def _reads_page_actor(function: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, page_actors: set[str]) -> bool:
    bound = {node.id for node in ast.walk(function) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    if not isinstance(function, ast.Lambda):
        bound |= {argument.arg for argument in function.args.args + function.args.kwonlyargs}
    return any(
        isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in page_actors - bound
        for node in ast.walk(function)
    )


def _no_op(node: ast.expr) -> bool:
    """``lambda: None``: a callback that does nothing acts for nobody (a component needs one to
    rerun on a state change)."""
    return isinstance(node, ast.Lambda) and isinstance(node.body, ast.Constant) and node.body.value is None


def walk(source: str, filename: str) -> tuple[list[str], list[str]]:
    """(what was found, the problems): every fragment and callback of one module's source."""
    tree = ast.parse(source, filename)
    functions = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    page_actors = _page_actors(tree)
    found: list[str] = []
    problems: list[str] = []

    def check(function: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, what: str) -> None:
        found.append(what)
        if not _starts_with_check(function):
            problems.append(f"{what} does not begin with {CHECK}(...)")
        elif _reads_page_actor(function, page_actors):
            problems.append(f"{what} acts as the page's actor instead of the one {CHECK}(...) returned")

    def resolve(node: ast.expr, what: str) -> None:
        if isinstance(node, ast.Call) and _called_name(node.func) == "partial" and node.args:
            node = node.args[0]
        if isinstance(node, ast.Lambda):
            check(node, what)
        elif isinstance(node, ast.Name) and node.id in functions:
            check(functions[node.id], what)
        else:
            found.append(what)
            problems.append(f"{what}: {ast.unparse(node)} cannot be checked here (define it in this module)")

    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if any(_called_name(decorator) in FRAGMENT_DECORATORS for decorator in node.decorator_list):
                check(node, f"{filename}:{node.lineno} fragment {node.name}")
        elif isinstance(node, ast.Call):
            first = node.args[0] if node.args else None
            if _called_name(node.func) in FRAGMENT_DECORATORS and isinstance(first, ast.Name | ast.Lambda):
                # st.fragment(function), not st.dialog("title") (a decorator seen here as a call)
                resolve(first, f"{filename}:{node.lineno} fragment {ast.unparse(first)}")
            for keyword in node.keywords:
                if keyword.arg is None or not CALLBACK_KEYWORD.match(keyword.arg):
                    continue
                if isinstance(keyword.value, ast.Constant) or _no_op(keyword.value):
                    continue  # on_select="rerun": Streamlit's own behaviour, no code of ours
                resolve(keyword.value, f"{filename}:{node.lineno} callback {keyword.arg}")

    def line(text: str) -> int:
        return int(text.split(":")[1].split()[0])

    return sorted(found, key=line), sorted(problems, key=line)


def project_sources() -> dict[str, str]:
    files = sorted((ROOT / "pages").glob("*.py")) + sorted(
        path for path in (ROOT / "ui").rglob("*.py") if "node_modules" not in path.parts
    )
    return {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for path in files}


def test_every_fragment_and_callback_in_pages_and_ui_checks_the_sign_in():
    found: list[str] = []
    problems: list[str] = []
    for filename, source in project_sources().items():
        module_found, module_problems = walk(source, filename)
        found += module_found
        problems += module_problems
    # The walk sees the fragments there are (it is not vacuous): the Label viewer, the Train
    # panel, the Predictions job and map waits.
    names = " ".join(found)
    for expected in ("label.py", "viewer_ui", "runs_ui", "job_status_ui", "map_status_ui"):
        assert expected in names, (expected, found)
    assert problems == []


def test_the_walk_finds_each_kind_of_unchecked_code():
    source = textwrap.dedent(
        """
        import streamlit as st
        from functools import partial
        from ui.session import session_actor

        actor = session_actor("annotator")

        @st.fragment
        def bare():
            save(actor)

        @st.fragment(run_every=2)
        def timer():
            \"\"\"Checks, but acts as the page's user.\"\"\"
            session_actor()
            save(actor)

        @st.dialog("Confirm")
        def confirm():
            st.write("no check")

        def later():
            pass

        def on_pick(image_id):
            keep(image_id)

        def checked(image_id):
            reader = session_actor()
            keep(reader, image_id)

        st.fragment(later)()
        st.button("Go", on_click=on_pick, args=(1,))
        st.selectbox("Pick", [1], on_change=partial(on_pick, 2))
        component(key="k", on_sync_change=lambda: save(actor))
        st.dataframe(rows, on_select=handlers.pick)
        st.button("Fine", on_click=checked, args=(1,))
        st.dataframe(rows, on_select="rerun")
        component(key="v", on_sync_change=lambda: None)
        """
    )
    found, problems = walk(source, "page.py")
    assert len(found) == 9
    assert problems == [
        "page.py:9 fragment bare does not begin with session_actor(...)",
        "page.py:13 fragment timer acts as the page's actor instead of the one session_actor(...) returned",
        "page.py:19 fragment confirm does not begin with session_actor(...)",
        "page.py:32 fragment later does not begin with session_actor(...)",
        "page.py:33 callback on_click does not begin with session_actor(...)",
        "page.py:34 callback on_change does not begin with session_actor(...)",
        "page.py:35 callback on_sync_change does not begin with session_actor(...)",
        "page.py:36 callback on_select: handlers.pick cannot be checked here (define it in this module)",
    ]
