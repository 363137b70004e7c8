"""Hypothesis strategies for Modbus messages, shared by the RTU and connection tests."""

from __future__ import annotations

from hypothesis import strategies as st

from protocols.modbus.messages import ExceptionResponse, ReadRegisters, RegistersResponse

units = st.integers(1, 247)
functions = st.sampled_from([3, 4])
requests = st.builds(
    lambda u, f, a, c: ReadRegisters(u, f, min(a, 0x10000 - c), c),
    units,
    functions,
    st.integers(0, 0xFFFF),
    st.integers(1, 125),
)
responses = st.one_of(
    st.builds(
        RegistersResponse,
        units,
        functions,
        st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125).map(tuple),
    ),
    st.builds(ExceptionResponse, units, functions, st.integers(1, 255)),
)
