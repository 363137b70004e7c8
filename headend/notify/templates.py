"""Message templates in Chinese (``zh``) and English (``en``): (title, body) with named fields.

Fields: ``account``, ``balance`` (with currency), ``days``, ``threshold``, ``disconnect_at``
(local time text), ``amount``, ``due``, ``period``, ``reason``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headend.notify import NotifyError

LANGUAGES = ("zh", "en")

TEMPLATES: dict[str, dict[str, tuple[str, str]]] = {
    "low_balance": {
        "zh": (
            "电费余额不足提醒",
            "户号 {account}：您的电费余额为 {balance}，已低于 {threshold}，请及时充值。",
        ),
        "en": (
            "Low electricity balance",
            "Account {account}: your balance is {balance}, below {threshold}. Please top up.",
        ),
    },
    "low_days": {
        "zh": (
            "电费余额不足提醒",
            "户号 {account}：按近期用电，您的余额 {balance} 预计仅可使用约 {days} 天，请及时充值。",
        ),
        "en": (
            "Low electricity balance",
            "Account {account}: at your recent use your balance of {balance} lasts about "
            "{days} days. Please top up.",
        ),
    },
    "final_notice": {
        "zh": (
            "停电最后通知",
            "户号 {account}：您的电费余额为 {balance}，已欠费。如未充值，将于 {disconnect_at} "
            "起停止供电。",
        ),
        "en": (
            "Final notice before disconnection",
            "Account {account}: your balance is {balance}. Unless you top up, supply will be "
            "disconnected from {disconnect_at}.",
        ),
    },
    "arrears": {
        "zh": (
            "电费欠费提醒",
            "户号 {account}：{period} 电费 {amount} 已于 {due} 到期未缴，请尽快缴费。",
        ),
        "en": (
            "Overdue electricity bill",
            "Account {account}: the {period} bill of {amount} was due on {due} and is unpaid. "
            "Please pay it.",
        ),
    },
    "disconnected": {
        "zh": (
            "已停止供电",
            "户号 {account}：因欠费（余额 {balance}），已于 {at} 停止供电。充值后将恢复供电。",
        ),
        "en": (
            "Supply disconnected",
            "Account {account}: supply was disconnected at {at} (balance {balance}). "
            "It is restored after a top-up.",
        ),
    },
    "reconnected": {
        "zh": ("已恢复供电", "户号 {account}：已收到您的缴费，余额 {balance}，供电正在恢复。"),
        "en": (
            "Supply restored",
            "Account {account}: thank you for your payment; balance {balance}. Supply is being "
            "restored.",
        ),
    },
    "disconnect_refused": {
        "zh": ("停电指令被拒绝", "户号 {account}：停电未执行（{reason}），将于 {at} 重试。"),
        "en": (
            "Disconnect refused",
            "Account {account}: the disconnect was not carried out ({reason}); next try {at}.",
        ),
    },
    "action_failed": {
        "zh": (
            "停复电操作失败，需人工处理",
            "户号 {account}：{action} 已停止自动重试（{reason}），请人工处理。",
        ),
        "en": (
            "Supply action failed: operator needed",
            "Account {account}: the {action} is no longer retried automatically ({reason}); "
            "an operator must decide.",
        ),
    },
}


def render(template: str, language: str, fields: Mapping[str, Any]) -> tuple[str, str]:
    """(title, body) of ``template`` in ``language`` (English when the language is unknown)."""
    texts = TEMPLATES.get(template)
    if texts is None:
        raise NotifyError(f"no template {template!r}; known: {sorted(TEMPLATES)}")
    title, body = texts.get(language) or texts["en"]
    try:
        return title.format(**fields), body.format(**fields)
    except KeyError as exc:
        raise NotifyError(f"template {template!r} needs the field {exc.args[0]!r}") from None
