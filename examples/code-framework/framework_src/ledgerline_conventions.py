"""ledgerline's house conventions as a check: `check(source)` raises AssertionError naming the first broken
rule of one step's source. The code-framework example's rows run it as their `style` check; it is not part of
the framework itself (a step never imports it)."""

import ast as _a
import re as _re


def _ll(n, *attrs):
    return isinstance(n, _a.Attribute) and isinstance(n.value, _a.Name) and n.value.id == "ll" and (not attrs or n.attr in attrs)


def check(src):
    t = _a.parse(src)
    imps = [n for n in _a.walk(t) if isinstance(n, (_a.Import, _a.ImportFrom))]
    assert not any(isinstance(n, _a.ImportFrom) and (n.module or "").startswith("ledgerline") for n in imps), "use `import ledgerline as ll`, not `from ledgerline import ...`"
    lls = [(a.name, a.asname) for n in imps if isinstance(n, _a.Import) for a in n.names if a.name.startswith("ledgerline")]
    assert lls and all(x == ("ledgerline", "ll") for x in lls), "import the framework exactly as `import ledgerline as ll`"
    for n in t.body:
        assert isinstance(n, (_a.Import, _a.ImportFrom, _a.FunctionDef)) or (isinstance(n, _a.Expr) and isinstance(n.value, _a.Constant)) or (isinstance(n, _a.Assign) and all(isinstance(x, _a.Name) and x.id.isupper() for x in n.targets)), f"line {n.lineno}: module level holds only imports, UPPER_CASE constants and the step"
    fs = [n for n in t.body if isinstance(n, _a.FunctionDef)]
    assert len(fs) == 1, "define exactly one step function"
    f, d = fs[0], fs[0].decorator_list
    assert len(d) == 1 and isinstance(d[0], _a.Call) and _ll(d[0].func, "step"), 'decorate the step with @ll.step("kebab-name") and nothing else'
    k = d[0].args
    assert len(k) == 1 and isinstance(k[0], _a.Constant) and isinstance(k[0].value, str) and all(w.arg == "needs" for w in d[0].keywords), "@ll.step takes one literal name and optionally needs=(...)"
    name = k[0].value
    assert _re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)+", name), f"step name {name!r} is not kebab-case with two or more words"
    assert f.name == name.replace("-", "_"), f"name the function after its step: {name.replace('-', '_')}"
    g = f.args
    assert [x.arg for x in g.args] == ["ctx", "rec"] and not (g.posonlyargs or g.kwonlyargs or g.vararg or g.kwarg or g.defaults), "a step takes exactly (ctx, rec)"
    assert isinstance(f.body[-1], _a.Return), "a step ends with a return"
    for n in _a.walk(f):
        at = f"line {getattr(n, 'lineno', '?')}: "
        assert not isinstance(n, _a.Raise), at + "steps never raise: return ll.fail(ll.E_..., reason)"
        assert not (isinstance(n, _a.Call) and isinstance(n.func, _a.Name) and n.func.id == "print"), at + "steps never print: use ctx.note(...)"
        assert not (isinstance(n, (_a.Subscript, _a.Attribute)) and isinstance(n.value, _a.Name) and n.value.id == "rec"), at + "read records with ll.field / ll.has, build new ones with ll.amend"
        assert not isinstance(n, _a.Return) or (isinstance(n.value, _a.Call) and _ll(n.value.func, "ok", "fail", "drop")), at + "every return is ll.ok(...), ll.fail(...) or ll.drop(...)"
        if isinstance(n, _a.Call) and _ll(n.func, "fail"):
            assert len(n.args) == 2 and _ll(n.args[0]) and n.args[0].attr.startswith("E_"), at + "ll.fail takes an ll.E_* constant and a reason"

