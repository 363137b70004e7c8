"""Modbus RTU meters: the ``protocols.modbus`` slave role bound to simulated meter state.

One ``ModbusSlave`` codec per bus hears every byte (as every meter's UART does); requests for a
unit id that a powered, installed meter of this listener holds are answered from a register
image built with the codec's own ``registers.encode_values`` for the meter's model.  Unknown
unit ids and broadcasts get silence.  A read touching no register of the model's map gets
exception 02 (ILLEGAL DATA ADDRESS); holes inside the map read 0, as on most real meters.
Personalities: ``exception_on_gap`` answers exception 02 to any read touching a hole (some
meters do), ``word_order`` sends 32-bit values in another word order than the map documents.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from protocols.modbus.pdu import (
    ILLEGAL_DATA_ADDRESS,
    NEED_DATA,
    ExceptionResponse,
    IllegalRequest,
    ModbusSlave,
    ReadRegisters,
    RegistersResponse,
)
from protocols.modbus.registers import MeterMap, encode_values, load_map, read_image
from simulators.bus import Answer
from simulators.line import LineSettings
from simulators.meter import Meter
from simulators.readings import all_values


class ModbusListener:
    """The Modbus meters of one bus, answering through one shared slave codec."""

    def __init__(self, meters: Iterable[Meter]) -> None:
        self._slave = ModbusSlave()
        self.line: LineSettings | None = None  # its meters' serial settings (None: the bus's)
        self._by_unit: dict[int, list[Meter]] = {}
        self._maps: dict[str, MeterMap] = {}
        for meter in meters:
            self.add(meter)

    def add(self, meter: Meter) -> None:
        """Put a meter on the line (its address is the unit id as a string)."""
        self._by_unit.setdefault(int(meter.address), []).append(meter)
        self._maps.setdefault(meter.spec.model, load_map(meter.spec.model))

    def meters(self) -> Iterable[Meter]:
        """Every meter of this listener."""
        return [m for group in self._by_unit.values() for m in group]

    def _map(self, model: str, word_order: str) -> MeterMap:
        """The model's map, with every multi-word row in ``word_order`` unless it is ``map``."""
        key = f"{model}:{word_order}"
        found = self._maps.get(key)
        if found is None:
            base = self._maps.setdefault(model, load_map(model))
            found = base
            if word_order != "map":
                rows = tuple(dataclasses.replace(r, word_order=word_order) for r in base.registers)
                found = dataclasses.replace(base, registers=rows)
            self._maps[key] = found
        return found

    @property
    def dropped_bytes(self) -> int:
        """Line bytes the codec skipped as noise (DL/T 645 traffic included)."""
        return self._slave.dropped_bytes

    def feed(self, data: bytes, ts: float) -> list[Answer]:
        """Bytes from the master in; answers of the addressed meters out."""
        self._slave.receive_data(data)
        answers: list[Answer] = []
        while (event := self._slave.next_event()) is not NEED_DATA:
            for meter in self._by_unit.get(event.unit, ()):
                if not meter.answers(ts) or meter.busy(ts):
                    continue
                response = self._respond(meter, event, ts)
                answers.append(
                    Answer(meter, self._slave.send(response), _wrong(self._slave, response))
                )
        return answers

    def _respond(
        self, meter: Meter, event: ReadRegisters | IllegalRequest, ts: float
    ) -> RegistersResponse | ExceptionResponse:
        if isinstance(event, IllegalRequest):
            return ExceptionResponse(event.unit, event.function & 0x7F, event.code)
        assert isinstance(event, ReadRegisters)
        personality = meter.spec.personality
        meter_map = self._map(meter.spec.model, personality.word_order)
        rows = [r for r in meter_map.registers if r.function == event.function]
        end = event.address + event.count
        if not any(r.address < end and event.address < r.end for r in rows):
            return ExceptionResponse(event.unit, event.function, ILLEGAL_DATA_ADDRESS)
        if personality.exception_on_gap:
            mapped = {a for r in rows for a in range(r.address, r.end)}
            if any(a not in mapped for a in range(event.address, end)):
                return ExceptionResponse(event.unit, event.function, ILLEGAL_DATA_ADDRESS)
        values = all_values(meter, ts, meter_map.phases)
        image = encode_values(
            meter_map,
            {q: round(values[q], 4) for q in meter_map.quantities if q in values},
        )
        words = read_image(image, event.function, event.address, event.count)
        return RegistersResponse(event.unit, event.function, tuple(words))


def _wrong(
    slave: ModbusSlave, response: RegistersResponse | ExceptionResponse
) -> Callable[[], bytes]:
    """A re-encoding of ``response`` from the next unit id (the wrong-address fault)."""
    unit = response.unit % 247 + 1

    def build() -> bytes:
        if isinstance(response, ExceptionResponse):
            return slave.send(ExceptionResponse(unit, response.function, response.code))
        return slave.send(RegistersResponse(unit, response.function, response.registers))

    return build
