"""Hypothesis strategies for DL/T 698.45 data types and APDUs."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from protocols.dlt698 import apdu as A
from protocols.dlt698.axdr import Data
from protocols.dlt698.datetimes import TI, Date, DateTime, DateTimeS, Time
from protocols.dlt698.descriptors import (
    COMDCB,
    OAD,
    OMD,
    ROAD,
    SID,
    SIDMAC,
    BitString,
    DataType,
    Region,
    ScalerUnit,
)
from protocols.dlt698.frame import AddressType, ServerAddress
from protocols.dlt698.selection import (
    MS,
    Selector1,
    Selector2,
    Selector3,
    Selector4,
    Selector6,
    Selector9,
    Selector10,
)

T = DataType
u8, u16 = st.integers(0, 0xFF), st.integers(0, 0xFFFF)
oads = st.builds(OAD, u16, st.integers(0, 31), u8, st.integers(0, 7))
omds = st.builds(OMD, u16, u8, u8)
roads = st.builds(ROAD, oads, st.lists(oads, max_size=4).map(tuple))
csds = oads | roads
tis = st.builds(TI, u8, u16)
dtss = st.builds(DateTimeS, u16, u8, u8, u8, u8, u8)
dts = st.builds(DateTime, u16, u8, u8, u8, u8, u8, u8, u16)
addresses = st.builds(
    ServerAddress,
    st.binary(min_size=1, max_size=16).map(lambda b: b.hex().upper()),
    st.sampled_from(AddressType),
    st.integers(0, 3),
)
bitstrings = st.integers(0, 40).flatmap(
    lambda n: st.binary(min_size=(n + 7) // 8, max_size=(n + 7) // 8).map(lambda b: BitString(n, b))
)

_SCALARS: dict[DataType, st.SearchStrategy[Any]] = {
    T.NULL: st.none(),
    T.BOOL: st.booleans(),
    T.BIT_STRING: bitstrings,
    T.DOUBLE_LONG: st.integers(-(2**31), 2**31 - 1),
    T.DOUBLE_LONG_UNSIGNED: st.integers(0, 2**32 - 1),
    T.OCTET_STRING: st.binary(max_size=300),
    T.VISIBLE_STRING: st.text(st.characters(max_codepoint=255), max_size=40),
    T.UTF8_STRING: st.text(st.characters(exclude_categories=["Cs"]), max_size=20),
    T.INTEGER: st.integers(-128, 127),
    T.LONG: st.integers(-(2**15), 2**15 - 1),
    T.UNSIGNED: u8,
    T.LONG_UNSIGNED: u16,
    T.LONG64: st.integers(-(2**63), 2**63 - 1),
    T.LONG64_UNSIGNED: st.integers(0, 2**64 - 1),
    T.ENUM: u8,
    T.FLOAT32: st.floats(width=32, allow_nan=False),
    T.FLOAT64: st.floats(allow_nan=False),
    T.DATE_TIME: dts,
    T.DATE: st.builds(Date, u16, u8, u8, u8),
    T.TIME: st.builds(Time, u8, u8, u8),
    T.DATE_TIME_S: dtss,
    T.OI: u16,
    T.OAD: oads,
    T.ROAD: roads,
    T.OMD: omds,
    T.TI: tis,
    T.TSA: addresses,
    T.MAC: st.binary(max_size=20),
    T.RN: st.binary(max_size=20),
    T.SCALER_UNIT: st.builds(ScalerUnit, st.integers(-128, 127), u8),
    T.CSD: csds,
    T.SID: st.builds(SID, st.integers(0, 2**32 - 1), st.binary(max_size=8)),
    T.SID_MAC: st.builds(
        SIDMAC,
        st.builds(SID, st.integers(0, 2**32 - 1), st.binary(max_size=8)),
        st.binary(max_size=8),
    ),
    T.COMDCB: st.builds(COMDCB, u8, u8, u8, u8, u8),
    T.RCSD: st.lists(csds, max_size=4).map(tuple),
}
SCALAR_TYPES = sorted(_SCALARS)


def scalar(kind: DataType) -> st.SearchStrategy[Data]:
    """Data of one non-composite type."""
    return _SCALARS[kind].map(lambda v: Data(kind, v))


simple = st.sampled_from(SCALAR_TYPES).flatmap(scalar)
data: st.SearchStrategy[Data] = st.recursive(
    simple,
    lambda inner: st.builds(
        Data, st.sampled_from([T.ARRAY, T.STRUCTURE]), st.lists(inner, max_size=5).map(tuple)
    ),
    max_leaves=12,
)
regions = st.builds(Region, u8, simple, simple)
mss = st.one_of(
    st.sampled_from([MS(0), MS(1)]),
    st.lists(u8, max_size=4).map(lambda v: MS(2, tuple(v))),
    st.lists(addresses, max_size=3).map(lambda v: MS(3, tuple(v))),
    st.lists(u16, max_size=4).map(lambda v: MS(4, tuple(v))),
    st.tuples(st.integers(5, 7), st.lists(regions, max_size=2)).map(
        lambda t: MS(t[0], tuple(t[1]))
    ),
)
selector2 = st.builds(Selector2, oads, simple, simple, simple)
rsds = st.one_of(
    st.none(),
    st.builds(Selector1, oads, simple),
    selector2,
    st.lists(selector2, max_size=3).map(lambda v: Selector3(tuple(v))),
    st.builds(Selector4, dtss, mss, st.sampled_from([4, 5])),
    st.builds(Selector6, dtss, dtss, tis, mss, st.sampled_from([6, 7, 8])),
    st.builds(Selector9, u8),
    st.builds(Selector10, u8, mss),
)
T.RSD and _SCALARS.update({T.RSD: rsds, T.MS: mss, T.REGION: regions})
SCALAR_TYPES = sorted(_SCALARS)

piids = u8
time_tags = st.none() | st.builds(A.TimeTag, dtss, tis)
results_normal = st.builds(A.ResultNormal, oads, st.none() | data, u8).map(
    lambda r: r if r.data is None else A.ResultNormal(r.oad, r.data)
)


@st.composite
def results_record(draw: st.DrawFn) -> A.ResultRecord:
    """A-ResultRecord with rows as wide as its columns (or a DAR)."""
    columns = tuple(draw(st.lists(csds, min_size=1, max_size=3)))
    if draw(st.booleans()):
        return A.ResultRecord(draw(oads), columns, None, draw(u8))
    rows = draw(st.lists(st.tuples(*[data for _ in columns]), max_size=3))
    return A.ResultRecord(draw(oads), columns, tuple(rows))


follow = (
    st.none()
    | st.lists(results_normal, min_size=1, max_size=2).map(tuple)
    | st.lists(results_record(), min_size=1, max_size=2).map(tuple)
)
mechanisms = st.one_of(
    st.just(A.ConnectMechanism()),
    st.text(st.characters(max_codepoint=127), max_size=8).map(
        lambda p: A.ConnectMechanism(1, password=p)
    ),
    st.builds(
        A.ConnectMechanism,
        st.sampled_from([2, 3]),
        st.just(""),
        st.binary(max_size=8),
        st.binary(max_size=8),
    ),
)
factories = st.builds(
    A.FactoryVersion,
    *[st.text("ABCDEFGH0123456789", min_size=n, max_size=n) for n in (4, 4, 6, 4, 6, 8)],
)
conformance = st.tuples(st.binary(min_size=8, max_size=8), st.binary(min_size=16, max_size=16))

apdus: st.SearchStrategy[Any] = st.one_of(
    st.builds(A.GetRequestNormal, piids, oads, time_tags),
    st.builds(A.GetRequestNormalList, piids, st.lists(oads, max_size=5).map(tuple), time_tags),
    st.builds(
        A.GetRequestRecord, piids, oads, rsds, st.lists(csds, max_size=3).map(tuple), time_tags
    ),
    st.builds(A.GetRequestNext, piids, u16, time_tags),
    st.builds(A.GetResponseNormal, piids, results_normal, follow, time_tags),
    st.builds(
        A.GetResponseNormalList,
        piids,
        st.lists(results_normal, max_size=3).map(tuple),
        follow,
        time_tags,
    ),
    st.builds(A.GetResponseRecord, piids, results_record(), follow, time_tags),
    st.builds(
        A.GetResponseNext, piids, st.booleans(), u16, st.just(0), st.just(()), u8, follow, time_tags
    ),
    st.builds(
        A.GetResponseNext,
        piids,
        st.booleans(),
        u16,
        st.just(1),
        st.lists(results_normal, max_size=2).map(tuple),
        st.just(0),
        follow,
        time_tags,
    ),
    st.builds(A.SetRequestNormal, piids, oads, data, time_tags),
    st.builds(A.SetResponseNormal, piids, oads, u8, follow, time_tags),
    st.builds(A.ActionRequestNormal, piids, omds, data, time_tags),
    st.builds(A.ActionResponseNormal, piids, omds, u8, st.none() | data, follow, time_tags),
    st.builds(
        A.ReportNotification,
        piids,
        st.lists(results_normal, max_size=2).map(tuple),
        st.just(False),
        follow,
        time_tags,
    ),
    st.builds(
        A.ReportResponse, piids, st.lists(oads, max_size=3).map(tuple), st.booleans(), time_tags
    ),
    st.builds(
        lambda p, c, lim, mech, tag: A.ConnectRequest(
            p, lim[0], c[0], c[1], lim[1], lim[2], lim[3], lim[4], lim[5], mech, tag
        ),
        piids,
        conformance,
        st.tuples(u16, u16, u16, u8, u16, st.integers(0, 2**32 - 1)),
        mechanisms,
        time_tags,
    ),
    st.builds(
        lambda p, f, c, lim, res, rnd, fol, tag: A.ConnectResponse(
            p,
            f,
            lim[0],
            c[0],
            c[1],
            lim[1],
            lim[2],
            lim[3],
            lim[4],
            lim[5],
            res,
            rnd,
            b"\x01" if rnd is not None else b"",
            fol,
            tag,
        ),
        piids,
        factories,
        conformance,
        st.tuples(u16, u16, u16, u8, u16, st.integers(0, 2**32 - 1)),
        u8,
        st.none() | st.binary(max_size=8),
        follow,
        time_tags,
    ),
    st.builds(A.ReleaseRequest, piids, time_tags),
    st.builds(A.ReleaseResponse, piids, u8, follow, time_tags),
    st.builds(A.ReleaseNotification, piids, dtss, dtss, follow, time_tags),
    st.builds(A.LinkRequest, piids, st.sampled_from(A.LinkType), u16, dts),
    st.builds(A.LinkResponse, piids, u8, dts, dts, dts),
    st.builds(
        A.SecurityRequest,
        st.binary(max_size=40),
        st.just(A.Verification.RN),
        st.binary(max_size=16),
        st.just(b""),
        st.just(0),
        st.just(b""),
        st.booleans(),
    ),
    st.builds(
        A.SecurityRequest,
        st.binary(max_size=40),
        st.just(A.Verification.SID_MAC),
        st.just(b""),
        st.binary(max_size=8),
        st.integers(0, 2**32 - 1),
        st.binary(max_size=4),
        st.booleans(),
    ),
    st.builds(
        A.SecurityResponse, st.binary(max_size=40), st.none() | st.binary(max_size=8), st.booleans()
    ),
    st.builds(
        A.SecurityResponse, st.just(b""), st.none() | st.binary(max_size=8), st.just(False), u8
    ),
    st.builds(A.ErrorResponse, piids, u8),
)
