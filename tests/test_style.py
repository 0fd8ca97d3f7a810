"""The notebooks' shape (issue 14), checked fast without running anything: short exported cells,
no line over 100 columns, no `a; b` chains, imports at the top of each module and only of earlier
notebooks, and one home for every shared constant."""
import ast, io, json, re, statistics, tokenize
from pathlib import Path
import pytest
from conftest import ROOT

NBS = sorted((ROOT / "nbs").glob("0*.ipynb"))
MAX_MEDIAN, MAX_COLS = 10, 100
DIRECTIVE = re.compile(r"\s*#\|")
SHARED = ("LABELS", "MEASURES", "CONTINUOUS", "THRESHOLDS_CM", "PLAUSIBLE_RANGES", "SAMPLERS",
          "TABLE_ONE_PAPER", "to_uint8", "predicted_eps_x0", "as_condition", "save_fig")
GONE = ("CLINICAL_RANGES",)


def _source(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def exported_cells(nb: Path) -> list:
    "`(cell index, code lines without directive lines)` of the notebook's `#| export` cells."
    out = []
    for i, c in enumerate(json.loads(nb.read_text())["cells"]):
        src = _source(c)
        first = src.lstrip().splitlines()[0] if src.strip() else ""
        if c["cell_type"] == "code" and re.match(r"#\|\s*export\s*$", first):
            out.append((i, [l for l in src.splitlines() if not DIRECTIVE.match(l)]))
    return out


def module_order() -> list:
    "The exported modules in notebook order (from each notebook's `#| default_exp`)."
    mods = []
    for nb in NBS:
        for c in json.loads(nb.read_text())["cells"]:
            if m := re.match(r"#\|\s*default_exp\s+(\S+)", _source(c).strip()): mods.append(m[1])
    return mods


MODULES = [ROOT / "cxr_nbdev" / f"{m}.py" for m in module_order()]


@pytest.mark.parametrize("nb", NBS, ids=lambda p: p.stem)
def test_exported_cells_are_short(nb):
    "Median exported cell <= 10 lines (directive lines not counted)."
    lens = [len(body) for _, body in exported_cells(nb)]
    med = statistics.median(lens) if lens else 0
    longest = sorted(((len(b), i) for i, b in exported_cells(nb)), reverse=True)[:5]
    assert med <= MAX_MEDIAN, (f"{nb.name}: median exported cell is {med} lines (> {MAX_MEDIAN}); "
                               f"longest (lines, cell index): {longest}")


@pytest.mark.parametrize("nb", NBS, ids=lambda p: p.stem)
def test_no_long_lines(nb):
    "No line of exported code is over 100 columns."
    bad = [f"cell {i} line {j + 1} ({len(l)} cols): {l.strip()[:60]}"
           for i, body in exported_cells(nb) for j, l in enumerate(body) if len(l) > MAX_COLS]
    assert not bad, f"{nb.name}: {len(bad)} exported line(s) over {MAX_COLS} columns:\n" + \
        "\n".join(bad[:20])


@pytest.mark.parametrize("nb", NBS, ids=lambda p: p.stem)
def test_no_semicolon_chains(nb):
    "No `a; b` statement chains in exported code (found with tokenize, so strings do not count)."
    bad = []
    for i, body in exported_cells(nb):
        toks = tokenize.generate_tokens(io.StringIO("\n".join(body) + "\n").readline)
        bad += [f"cell {i} line {t.start[0]}: {t.line.strip()[:80]}" for t in toks
                if t.type == tokenize.OP and t.string == ";"]
    assert not bad, f"{nb.name}: {len(bad)} `;` chain(s) in exported code:\n" + "\n".join(bad[:20])


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


@pytest.mark.parametrize("mod", MODULES, ids=lambda p: p.stem)
def test_imports_at_module_top(mod):
    "Every import is at module level (column 0); a local import of an optional dependency says so."
    lines = mod.read_text().splitlines()
    bad = [f"line {n.lineno}: {lines[n.lineno - 1].strip()[:80]}" for n in _imports(mod)
           if n.col_offset > 0 and "optional" not in lines[n.lineno - 1].lower()]
    assert not bad, (f"cxr_nbdev/{mod.name}: {len(bad)} import(s) not at module level (move them to "
                     "the imports cell, or mark an optional dependency with a `# optional` comment):\n"
                     + "\n".join(bad))


@pytest.mark.parametrize("mod", MODULES, ids=lambda p: p.stem)
def test_imports_follow_notebook_order(mod):
    "A module imports only modules of earlier notebooks."
    order = module_order()
    bad = []
    for n in _imports(mod):
        names = [a.name for a in n.names] if isinstance(n, ast.Import) else \
                [("cxr_nbdev." if n.level else "") + (n.module or "")]
        for name in names:
            other = name.split(".")[1] if name.startswith("cxr_nbdev.") else None
            if other in order and order.index(other) >= order.index(mod.stem):
                bad.append(f"line {n.lineno}: imports cxr_nbdev.{other}")
    assert not bad, f"cxr_nbdev/{mod.name} imports a later (or its own) module:\n" + "\n".join(bad)


def _top_level_names(path: Path) -> dict:
    "`{name: line}` of names assigned or defined at module level (also inside top-level if/try)."
    out, todo = {}, list(ast.parse(path.read_text()).body)
    while todo:
        n = todo.pop(0)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): out[n.name] = n.lineno
        elif isinstance(n, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = n.targets if isinstance(n, ast.Assign) else [n.target]
            for t in targets:
                for x in ast.walk(t):
                    if isinstance(x, ast.Name): out[x.id] = n.lineno
        elif isinstance(n, (ast.If, ast.Try, ast.With)):
            todo += [*n.body, *getattr(n, "orelse", []), *getattr(n, "finalbody", []),
                     *[s for h in getattr(n, "handlers", []) for s in h.body]]
    return out


def _homes() -> dict:
    "`{name: [module:line, ...]}` for every name assigned at module level in cxr_nbdev."
    homes = {}
    for mod in MODULES:
        for name, line in _top_level_names(mod).items():
            homes.setdefault(name, []).append(f"cxr_nbdev/{mod.name}:{line}")
    return homes


SHARED_NAMES = sorted(set(SHARED) | {n for n in _homes() if n.startswith("PAPER_")})


@pytest.mark.parametrize("name", SHARED_NAMES)
def test_one_home(name):
    "Each shared constant or helper is defined in exactly one module; the others import it."
    where = _homes().get(name, [])
    assert len(where) == 1, (f"{name} is defined in {len(where)} modules ({', '.join(where) or 'none'}): "
                             "keep one definition and import it everywhere else")


@pytest.mark.parametrize("name", GONE)
def test_removed_names(name):
    "Names replaced by a shared definition are gone."
    where = _homes().get(name, [])
    assert not where, f"{name} is still defined in {', '.join(where)}: use core's PLAUSIBLE_RANGES"


STAGE_NBS = sorted((ROOT / "nbs").glob("0[1-7]_*.ipynb"))


def stage_cells(nb: Path) -> list:
    "`(index, cell)` of the cells of the notebook's stage section (from '## Running the stage' on)."
    cells = json.loads(nb.read_text())["cells"]
    start = next(i for i, c in enumerate(cells)
                 if c["cell_type"] == "markdown" and _source(c).startswith("## Running the stage"))
    return [(i, c) for i, c in enumerate(cells) if i >= start]


@pytest.mark.parametrize("nb", STAGE_NBS, ids=lambda p: p.stem)
def test_stage_cells_follow_the_lesson_rules(nb):
    """The stage section is written like the lessons: every line within 100 columns, no `a; b`
    chains, and a sentence (a markdown cell) before each code cell."""
    bad, cells = [], stage_cells(nb)
    for k, (i, c) in enumerate(cells):
        if c["cell_type"] != "code": continue
        src = _source(c)
        bad += [f"cell {i} ({c.get('id')}) line {j + 1}: {len(l)} cols"
                for j, l in enumerate(src.splitlines()) if len(l) > MAX_COLS]
        toks = tokenize.generate_tokens(io.StringIO(src + "\n").readline)
        bad += [f"cell {i} ({c.get('id')}) line {t.start[0]}: `;` chain" for t in toks
                if t.type == tokenize.OP and t.string == ";"]
        if cells[k - 1][1]["cell_type"] != "markdown":
            bad.append(f"cell {i} ({c.get('id')}): no sentence before it: {src.strip()[:60]!r}")
    assert not bad, f"{nb.name}: {len(bad)} stage cell(s) break the lesson rules:\n" + "\n".join(bad)


@pytest.mark.parametrize("nb", STAGE_NBS, ids=lambda p: p.stem)
def test_stage_uses_no_lesson_variables(nb):
    """Names the stage section reads are its own, the parameters', or the exported cells': none comes
    from a lesson cell (the runner can leave the lessons out: `cxr-pipeline --no-lessons`)."""
    from cxr_nbdev.runs import _stage_cell
    import builtins, nbformat
    book = nbformat.read(nb, as_version=4)
    first = stage_cells(nb)[0][0]
    names = lambda src, ctx: {n.id for n in ast.walk(ast.parse(_code(src))) if isinstance(n, ast.Name)
                              and isinstance(n.ctx, ctx)} | (_defs(src) if ctx is ast.Store else set())
    kept, lesson = set(dir(builtins)), set()
    for c in book.cells[:first]:
        if c.cell_type != "code": continue
        if _stage_cell(c): kept |= names(c.source, ast.Store)
        else: lesson |= names(c.source, ast.Store)
    bad = []
    for c in book.cells[first:]:
        if c.cell_type != "code": continue
        own = names(c.source, ast.Store) | _bound(c.source)
        if leak := (names(c.source, ast.Load) - kept - own) & lesson: bad.append(f"{c.id}: {sorted(leak)}")
        kept |= own
    assert not bad, f"{nb.name}: stage cells read lesson variables:\n" + "\n".join(bad)


def _code(src: str) -> str:
    return "\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("#|", "%", "!")))


def _defs(src: str) -> set:
    "Names bound by def, class and import statements."
    out = set()
    for n in ast.walk(ast.parse(_code(src))):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): out.add(n.name)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            out |= {(a.asname or a.name).split(".")[0] for a in n.names}
    return out


def _bound(src: str) -> set:
    "Arguments of lambdas and functions (bound locally)."
    return {a.arg for n in ast.walk(ast.parse(_code(src))) if isinstance(n, ast.arguments)
            for a in [*n.args, *n.kwonlyargs, *n.posonlyargs]}
