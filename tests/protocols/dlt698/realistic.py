"""Realistic APDUs of every service (what meters and concentrators actually exchange)."""

# ruff: noqa: F403, F405

from __future__ import annotations

from protocols.dlt698.apdu import *
from protocols.dlt698.axdr import Data
from protocols.dlt698.descriptors import *
from protocols.dlt698.encoder import encode_apdu
from protocols.dlt698.frame import ServerAddress

T = DataType
dts = DateTimeS(2026, 12, 6, 0, 0, 0)
dt = DateTime(2026, 12, 6, 0, 10, 0, 0, 0)
oad = OAD.parse("00100200")
arr = Data(T.ARRAY, tuple(Data(T.DOUBLE_LONG_UNSIGNED, i) for i in range(5)))
rsd1 = Selector1(OAD.parse("20210200"), Data(T.DATE_TIME_S, dts))
cols = (OAD.parse("20210200"), OAD.parse("00100200"))
tsa = ServerAddress("000000000001")

REALISTIC: list[Apdu] = [
    GetRequestNormal(1, oad),  # get_normal
    GetRequestNormalList(2, (oad, OAD.parse("20000200"))),  # get_list
    GetRequestRecord(3, OAD.parse("50040200"), rsd1, cols),  # get_record1
    GetRequestRecord(3, OAD.parse("301B0200"), Selector9(1), ()),  # get_record9
    GetRequestRecord(
        3,
        OAD.parse("50040200"),
        Selector2(
            OAD.parse("20210200"),
            Data(T.DATE_TIME_S, dts),
            Data(T.DATE_TIME_S, DateTimeS(2026, 12, 8)),
            Data(T.TI, TI(3, 1)),
        ),
        (ROAD(OAD.parse("50040200"), cols),),
    ),  # get_record2
    GetRequestRecord(3, OAD.parse("60120300"), Selector10(1, MS(3, (tsa,))), ()),  # get_record10
    GetRequestRecord(
        3, OAD.parse("60120300"), Selector6(dts, dts, TI(1, 15), MS(1)), ()
    ),  # get_record6
    GetRequestRecord(3, OAD.parse("60120300"), Selector4(dts, MS(2, (1, 2))), ()),  # get_record4
    GetRequestNext(4, 7),  # get_next
    GetResponseNormal(1, ResultNormal(oad, arr)),  # get_resp
    GetResponseNormal(1, ResultNormal(oad, None, 6)),  # get_resp_dar
    GetResponseNormalList(
        2, (ResultNormal(oad, arr), ResultNormal(OAD.parse("20000200"), None, 4))
    ),  # get_list_resp
    GetResponseRecord(
        3, ResultRecord(OAD.parse("50040200"), cols, ((Data(T.DATE_TIME_S, dts), arr),))
    ),  # get_rec_resp
    GetResponseRecord(3, ResultRecord(OAD.parse("50040200"), cols, None, 6)),  # get_rec_resp_dar
    GetResponseNext(4, True, 7, 1, (ResultNormal(oad, arr),)),  # get_next_resp
    SetRequestNormal(5, OAD.parse("40000200"), Data(T.DATE_TIME_S, dts)),  # set
    SetResponseNormal(5, OAD.parse("40000200"), 0),  # set_resp
    ActionRequestNormal(
        6,
        OMD(0x8000, 129, 0),
        Data(
            T.ARRAY,
            (
                Data(
                    T.STRUCTURE,
                    (
                        Data(T.OAD, OAD.parse("F2050201")),
                        Data(T.UNSIGNED, 0),
                        Data(T.LONG_UNSIGNED, 0),
                        Data(T.BOOL, False),
                    ),
                ),
            ),
        ),
    ),  # action
    ActionResponseNormal(6, OMD(0x8000, 129, 0), 0, None),  # action_resp
    ActionResponseNormal(6, OMD(0x8000, 129, 0), 0, Data(T.UNSIGNED, 3)),  # action_resp_data
    ReportNotification(7, (ResultNormal(oad, arr),)),  # report
    ReportNotification(
        7, (ResultRecord(OAD.parse("301B0200"), cols, ((Data(T.DATE_TIME_S, dts), arr),)),), True
    ),  # report_rec
    ReportResponse(7, (oad,)),  # report_resp
    ConnectRequest(8),  # connect
    ConnectRequest(8, mechanism=ConnectMechanism(1, password="123456")),  # connect_pw
    ConnectResponse(
        8,
        FactoryVersion(),
        0x16,
        PROTOCOL_CONFORMANCE,
        FUNCTION_CONFORMANCE,
        512,
        512,
        1,
        2000,
        7200,
    ),  # connect_resp
    ReleaseRequest(9),  # release
    ReleaseResponse(9, 0),  # release_resp
    ReleaseNotification(9, dts, dts),  # release_note
    LinkRequest(0, LinkType.HEARTBEAT, 60, dt),  # link
    LinkResponse(0, 0x80, dt, dt, dt),  # link_resp
    SecurityRequest(
        encode_apdu(GetRequestNormal(1, oad)), Verification.RN, rn=bytes(16)
    ),  # security_rn
    SecurityRequest(
        encode_apdu(GetRequestNormal(1, oad)),
        Verification.SID_MAC,
        mac=b"1234",
        sid=0x81000000,
        sid_extra=b"\x00\x01",
    ),  # security_sidmac
    SecurityResponse(
        encode_apdu(GetResponseNormal(1, ResultNormal(oad, arr))), b"\x01\x02\x03\x04"
    ),  # security_resp
    SecurityResponse(b"", None, False, 22),  # security_resp_dar
    GetRequestNormal(1, oad, TimeTag(dts, TI(1, 5))),  # time_tag
    GetResponseNormal(1, ResultNormal(oad, arr), (ResultNormal(oad, arr),)),  # follow
    ErrorResponse(1, 2),  # error
]
