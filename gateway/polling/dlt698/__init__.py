"""The DL/T 698.45 driver: interface objects (``protocols.dlt698``) as poller items.

What each group reads (one GET each; ``docs/dlt698.md`` "Gateway driver")::

    energy   0010 0200 forward active total + tariffs (area total meters add 0020 0200)
    export   0020 0200 reverse active total + tariffs (rooftop PV)
    instant  NormalList 2000 voltage, 2001 current, 2004 active power, 200A power factor,
             200F frequency
    events   NormalList 3011/301B/301C attribute 4 (records held), 2014 status words (relay),
             4000 clock; counters that went up make the poller read the records: one GET-Record
             per event object, Selector10 (the last k records, most recent first)
    frozen   5004 0200 GET-Record Selector9 (the n-th last freeze): freeze time 2021 and the
             energy columns in one row, keyed by the meter's freeze time

A NormalList with a DAR in any result is refused as a whole and falls back to its single
attributes (like a DL/T 645 block to its members), so the capability machinery marks exactly the
objects the meter lacks.  A long record answer arriving as GET-Next blocks is continued and
joined; link-layer fragments are confirmed inside one exchange (``data_to_send``).

Association: reads go without CONNECT (most RS-485 meters).  A meter that answers a read with
DAR 15 (unauthorised) or an ERROR-Response gets a public CONNECT in the same exchange and the
read is sent again; from then on every exchange opens with a CONNECT once the association has
expired (``ConnectResponse.timeout``).
"""

from gateway.polling.dlt698.driver import Dlt698Driver
from gateway.polling.dlt698.exchange import Dlt698Exchange
from gateway.polling.dlt698.items import EventRecord, Item

__all__ = ["Dlt698Driver", "Dlt698Exchange", "EventRecord", "Item"]
