"""Pure decisions: functions over plain data that decide what should exist; no I/O."""
