"""The data plane's shared words and its task codec, without Redis: the generated Lua
constants match trimtab.queue.wire, no script spells a state or a reply itself, the
constants refuse an unknown name, and a task survives its encoding whatever it holds."""

from __future__ import annotations

import enum
import importlib.resources
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lupa import LuaError, LuaRuntime

from trimtab.queue import luawire, messages, scripts, wire

LUA = importlib.resources.files("trimtab.queue") / "lua"
SCRIPTS = sorted(
    p.name for p in LUA.iterdir() if p.name.endswith(".lua") and not p.name.startswith("_")
)
WORDS = {v.value for enum in luawire.LUA_TABLES.values() for v in enum}
# Where a state or reply would be spelt: compared, returned, or written as a state/status.
SPELT = re.compile(
    r"""(?:[=~]=\s*|return\s*\{?\s*|'state',\s*|'status',\s*|reply\s*=\s*)'([a-z_-]+)'"""
)


def test_the_checked_in_constants_are_generated_from_the_enums() -> None:
    assert (LUA / "_wire.lua").read_text() == luawire.lua_constants()


@pytest.mark.parametrize("name", [*SCRIPTS, "_common.lua", "_ending.lua"])
def test_no_script_spells_a_state_or_reply_of_its_own(name: str) -> None:
    code = re.sub(r"--.*", "", (LUA / name).read_text())  # comments may name them
    spelt = set(SPELT.findall(code)) & WORDS
    assert not spelt, f"{name} spells {sorted(spelt)}: use the tables of _wire.lua"


RUN_HASH_FIELDS = {f.value for f in (*wire.RunField, *wire.StepField)}
# Where a run-hash field would be spelt: right after the run's key, or after a prefix.
FIELD_SPELT = re.compile(r"(?:run_key,\s*|\.\.\s*)'([a-z_]+)'")


@pytest.mark.parametrize("name", [*SCRIPTS, "_common.lua", "_ending.lua"])
def test_no_script_spells_a_run_hash_field_of_its_own(name: str) -> None:
    code = re.sub(r"--.*", "", (LUA / name).read_text())
    spelt = set(FIELD_SPELT.findall(code)) & RUN_HASH_FIELDS
    assert not spelt, f"{name} spells {sorted(spelt)}: use RUN_FIELD and STEP_FIELD"


def test_a_step_field_names_its_step_and_nothing_else() -> None:
    key = wire.step_field("a:b", wire.StepField.STATE)
    assert key == "s:a:b:state"
    assert wire.step_of_field(key, wire.StepField.STATE) == "a:b"
    assert wire.step_of_field(key, wire.StepField.ATTEMPT) is None
    assert wire.step_of_field(wire.RunField.STATUS, wire.StepField.STATE) is None
    prelude = luawire.lua_constants()
    assert LuaRuntime().execute(prelude + "return step_prefix('a:b') .. STEP_FIELD.state") == key


def test_every_registered_script_starts_with_its_flags_then_the_constants() -> None:
    assert set(scripts.NAMES) == {n.removesuffix(".lua") for n in SCRIPTS}
    for name in scripts.NAMES:
        flags, _, rest = scripts.source(name).partition("\n")
        if name in scripts.ADMITTING:  # refused by a full Redis: no flags at all
            assert scripts.source(name).startswith(luawire.lua_constants())
        else:  # running work goes on when Redis is full
            assert flags == "#!lua flags=allow-oom"
            assert rest.startswith(luawire.lua_constants())
    assert {"submit"} == scripts.ADMITTING


def test_the_lua_tables_hold_the_enum_values_and_refuse_unknown_names() -> None:
    lua = LuaRuntime()
    prelude = luawire.lua_constants()
    assert lua.execute(prelude + "return STEP.done") == wire.StepState.DONE.value
    assert lua.execute(prelude + "return REPLY.not_dead") == wire.Reply.NOT_DEAD.value
    with pytest.raises(LuaError, match="no constant dnoe"):
        lua.execute(prelude + "return STEP.dnoe")


texts = st.text(min_size=1, max_size=20)


@given(
    task=st.builds(
        messages.Task,
        namespace=texts,
        run_id=texts,
        step=texts,
        attempt=st.integers(1, 10**9),
        workflow=texts,
        generation=st.integers(1, 10**9),
        enqueued_ms=st.integers(0, 10**13).map(float),
        budget_from=st.integers(0, 10**9),
        priority=st.sampled_from(wire.Priority),
    )
)
def test_a_task_survives_its_encoding(task: messages.Task) -> None:
    flat = task.encode()
    assert all(isinstance(x, str) for x in flat)
    pairs = dict(zip(flat[::2], flat[1::2], strict=True))
    assert messages.decode(pairs) == task
    assert messages.decode({k.encode(): v.encode() for k, v in pairs.items()}) == task


def test_a_task_of_an_unknown_priority_is_refused_by_name() -> None:
    fields = messages.Task("ns", "r", "s", 1, "wf", 1, 0.0, priority=wire.Priority.LOW).fields()
    assert fields["pri"] == "low"
    with pytest.raises(messages.MessageError, match="unknown priority"):
        messages.decode({**fields, "pri": "urgent"})
    del fields["pri"]
    assert messages.decode(fields).priority is wire.Priority.NORMAL  # as before levels


def test_an_enum_member_named_as_a_lua_keyword_is_refused_before_any_script_breaks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Op(enum.StrEnum):
        END = "end"

    monkeypatch.setitem(luawire.LUA_TABLES, "OP", Op)
    with pytest.raises(ValueError, match=r"OP would name a Lua keyword as a key: \['end'\]"):
        luawire.lua_constants()
