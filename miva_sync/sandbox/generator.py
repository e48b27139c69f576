"""A deterministic generator of realistic Miva orders (docs/miva-api.md §5, §9).

Same seed, same orders; dates are seeded offsets from ``now`` (the last 90 days),
so ``--since 30d`` finds them whenever the sandbox runs. Money is kept in cents
while building, so totals add up exactly: total = items - discounts + shipping + tax.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from miva_sync.sandbox import catalog

Order = dict[str, Any]
DAY = 86400
SPAN = 90 * DAY
ADDRESS_FIELDS = ("fname", "lname", "email", "comp", "phone", "fax",
                  "addr1", "addr2", "city", "state", "zip", "cntry")  # fmt: skip

# Order kinds; "admin" is an admin-created order with no payment yet, "check"
# is paid by check and, like Miva's check module, leaves no payment record.
CARD, PAYPAL, CHECK, ADMIN, ADMIN_PAID = (
    "card",
    "paypal",
    "check",
    "admin",
    "admin_paid",
)


def money(cents: int) -> float:
    """Cents as the JSON number a store returns."""
    return cents / 100


def formatted(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) / 100:,.2f}"


def _ascii(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


@dataclass
class GeneratedStore:
    """What ``generate_store`` returns: visible orders plus the store's realities."""

    orders: list[Order]
    hidden: dict[int, Order]  # reserved numbers whose orders complete later
    skipped: list[int]  # numbers given to abandoned baskets, never used
    bursts: list[list[int]]  # ids sharing one orderdate; the first also dt_updated
    late: list[int]  # visible ids completed after higher-numbered orders
    next_id: int


@dataclass
class OrderFactory:
    """Builds one order at a time from a seeded RNG; ids of sub-records count up."""

    rng: random.Random
    epoch: int
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    _counters: dict[str, int] = field(default_factory=dict)

    def next(self, name: str, start: int) -> int:
        value = self._counters.get(name, start) + 1
        self._counters[name] = value
        return value

    # --- people ------------------------------------------------------------------

    def address(self) -> dict[str, Any]:
        rng = self.rng
        first, last = rng.choice(catalog.FIRST_NAMES), rng.choice(catalog.LAST_NAMES)
        city, state, zip_code, country, _ = rng.choice(catalog.PLACES)
        return {
            "fname": first, "lname": last,
            "email": f"{_ascii(first)}.{_ascii(last)}{rng.randint(1, 99)}@example.com",
            "comp": "", "phone": f"555-01{rng.randint(0, 9)}-{rng.randint(1000, 9999)}",
            "fax": "", "addr1": f"{rng.randint(1, 9999)} {rng.choice(catalog.STREETS)}",
            "addr2": rng.choice(("", "", "", f"Apt {rng.randint(1, 40)}")),
            "city": city, "state": state, "zip": zip_code, "cntry": country,
        }  # fmt: skip

    def customer(self) -> dict[str, Any]:
        """A registered customer: reuse one often, so customers have order histories."""
        rng = self.rng
        if self.customers and rng.random() < 0.45:
            return self.customers[rng.choice(sorted(self.customers))]
        cust_id = self.next("customer", 300)
        addr = self.address()
        business = rng.random() < 0.1
        title = rng.choice(catalog.COMPANIES) if business else ""
        created = self.epoch - rng.randint(91 * DAY, 900 * DAY)
        cust: dict[str, Any] = {
            "id": cust_id, "account_id": self.next("account", 20) if business else 0,
            "login": f"{_ascii(addr['fname'])[:1]}{_ascii(addr['lname'])}{cust_id}",
            "pw_email": addr["email"], "ship_id": cust_id * 2, "ship_res": not business,
        }  # fmt: skip
        cust.update({f"ship_{k}": v for k, v in addr.items()})
        cust["bill_id"] = cust_id * 2 + 1
        cust.update({f"bill_{k}": v for k, v in addr.items()})
        if business:
            cust["ship_comp"] = cust["bill_comp"] = title
        cust.update({
            "tax_exempt": False, "order_cnt": 0, "order_avg": 0.0,
            "formatted_order_avg": "$0.00", "order_tot": 0.0, "formatted_order_tot": "$0.00",
            "note_count": 0, "dt_created": created,
            "dt_login": self.epoch - rng.randint(0, 20 * DAY), "dt_pwchg": created,
            "credit": 0.0, "formatted_credit": "$0.00", "business_title": title,
        })  # fmt: skip
        self.customers[cust_id] = cust
        return cust

    # --- one order -----------------------------------------------------------------

    def make(
        self,
        order_id: int,
        orderdate: int,
        until: int,
        kind: str | None = None,
        updated_at: int | None = None,
    ) -> Order:
        """An order placed at ``orderdate`` with later events up to ``until``.

        ``updated_at`` pins dt_updated (a bulk update shared by a burst).
        """
        rng = self.rng
        until = max(orderdate, updated_at if updated_at is not None else until)
        kind = kind or self._kind(until - orderdate)
        guest = kind not in (ADMIN, ADMIN_PAID) and rng.random() < 0.25
        cust = None if guest else self.customer()
        bill = _address_of(cust, "bill") if cust else self.address()
        ship = dict(bill)
        if rng.random() < 0.1:  # a gift shipped to someone else
            ship = self.address()
        rate = next(p[4] for p in catalog.PLACES if p[0] == ship["city"])

        items, subtotal = self._items(order_id)
        discount, promo = self._discount(subtotal, cust)
        shares = _split(discount, [i["_cents"] for i in items])
        tax = 0
        for item, share in zip(items, shares, strict=True):
            cents = item.pop("_cents")
            if share and promo is not None:
                item["discounts"].append({
                    "order_id": order_id, "line_id": item["line_id"], "pgrp_id": promo[4],
                    "display": True, "descrip": promo[0], "discount": money(share),
                })  # fmt: skip
            item_tax = (cents - share) * rate // 10000 if item["taxable"] else 0
            item["tax"], item["formatted_tax"] = money(item_tax), formatted(item_tax)
            tax += item_tax
        method, ship_cents, carrier = self._shipping(subtotal)
        total = subtotal - discount + ship_cents + tax

        status, ship_date = self._status(kind, orderdate, until)
        events = [orderdate]
        order: Order = {
            "id": order_id, "pay_id": 0, "batch_id": 0, "status": status,
            "pay_status": 0, "stk_status": 100, "dt_instock": 0, "orderdate": orderdate,
            "cust_id": cust["id"] if cust else 0, "ship_res": rng.random() < 0.8,
        }  # fmt: skip
        order.update({f"ship_{k}": v for k, v in ship.items()})
        order.update({f"bill_{k}": v for k, v in bill.items()})
        order.update({
            "ship_id": cust["ship_id"] if cust else 0, "ship_data": "",
            "source": "", "source_id": 0,
        })  # fmt: skip
        self._totals(order, total, ship_cents, tax)
        order.update({
            "pend_count": 0, "bord_count": 0, "note_count": 0, "dt_updated": orderdate,
            "ship_method": method, "cust_login": cust["login"] if cust else "",
            "cust_pw_email": cust["pw_email"] if cust else "",
            "business_title": cust["business_title"] if cust else "",
            "payment_module": "", "customer": cust if cust else {}, "items": items,
            "charges": self._charges(order_id, method, ship_cents, promo, discount, tax),
            "coupons": [], "discounts": [], "payments": [], "notes": [], "parts": [],
            "shipments": [], "returns": [],
            "CustomField_Values": {"customfields": {
                "gift_message": rng.choice(catalog.GIFT_MESSAGES) if ship != bill else "",
                "po_number": f"PO-{rng.randint(1000, 9999)}" if cust and
                cust["business_title"] else "",
            }},
        })  # fmt: skip
        if promo is not None:
            self._promo(order, promo, discount)
        events += self._payments(order, kind, orderdate, until, status)
        if ship_date is not None:
            self._ship(order, ship_date, carrier)
            events.append(ship_date)
        events += self._notes(order, kind, orderdate, until)
        if rng.random() < 0.08 and until > orderdate:  # an admin edit
            events.append(rng.randint(orderdate + 1, until))
        order["dt_updated"] = updated_at if updated_at is not None else max(events)
        return order

    def _kind(self, age: int) -> str:
        r = self.rng.random()
        if r < 0.02:
            return ADMIN_PAID if age > 7 * DAY else ADMIN
        if r < 0.05:
            return CHECK
        return PAYPAL if r < 0.22 else CARD

    def _items(self, order_id: int) -> tuple[list[dict[str, Any]], int]:
        rng = self.rng
        lines = rng.choices((1, 2, 3, 4), weights=(50, 30, 15, 5))[0]
        items, subtotal = [], 0
        for product in rng.sample(catalog.PRODUCTS, lines):
            code, name, sku, base, weight, taxable, attr = product
            line_id = self.next("line", 2200)
            options, extra = [], 0
            if attr is not None:
                prompt, attr_id, choices = catalog.ATTRIBUTES[attr]
                opt_code, opt_prompt, extra = rng.choice(choices)
                options.append({
                    "id": self.next("option", 880), "order_id": order_id,
                    "line_id": line_id, "option_id": attr_id * 10 + choices.index(
                        (opt_code, opt_prompt, extra)), "opt_code": opt_code,
                    "attr_code": attr, "attr_id": attr_id, "attmpat_id": 0,
                    "value": opt_code, "weight": 0.0, "formatted_weight": "0.00 pounds",
                    "retail": money(extra), "base_price": money(extra),
                    "price": money(extra), "data": "", "data_long": "",
                    "attr_prompt": prompt, "opt_prompt": opt_prompt, "discounts": [],
                })  # fmt: skip
            quantity = rng.choices((1, 2, 3, 5), weights=(70, 20, 7, 3))[0]
            price = base + extra
            cents = price * quantity
            subtotal += cents
            items.append({
                "order_id": order_id, "line_id": line_id, "status": 0, "subscrp_id": 0,
                "subterm_id": 0, "rma_id": 0, "rma_code": "", "rma_dt_issued": 0,
                "rma_dt_recvd": 0, "dt_instock": 0, "code": code, "name": name,
                "sku": sku, "retail": money(base + 400), "base_price": money(base),
                "price": money(price), "total": money(cents), "formatted_total":
                formatted(cents), "tax": 0.0, "formatted_tax": "$0.00",
                "weight": weight, "formatted_weight": f"{weight:.2f} pounds",
                "taxable": taxable, "upsold": False, "quantity": quantity,
                "discounts": [], "options": options, "tracktype": "", "tracknum": "",
                "shpmnt_id": 0, "product_id": 500 + catalog.PRODUCTS.index(product),
                "group_id": 0, "_cents": cents,
            })  # fmt: skip
        return items, subtotal

    def _discount(
        self, subtotal: int, cust: dict[str, Any] | None
    ) -> tuple[int, tuple[Any, ...] | None]:
        rng = self.rng
        if rng.random() < 0.18:
            promo: tuple[Any, ...] = rng.choice(catalog.COUPONS)
        elif cust and cust["account_id"] and rng.random() < 0.7:
            promo = catalog.WHOLESALE
        else:
            return 0, None
        _, _, how, amount, _, _ = promo
        cents = amount if how == "fixed" else subtotal * amount // 100
        return min(cents, subtotal), promo

    def _shipping(self, subtotal: int) -> tuple[str, int, str]:
        if subtotal >= catalog.FREE_SHIPPING_OVER and self.rng.random() < 0.6:
            return "Free Shipping", 0, "UPS"
        return self.rng.choice(catalog.SHIP_METHODS)

    def _status(self, kind: str, orderdate: int, until: int) -> tuple[int, int | None]:
        """Order status and, when shipped, the ship date (an update event)."""
        rng = self.rng
        age = until - orderdate
        if kind == ADMIN:
            return 0, None
        shipped_share = 0.85 if age > 3 * DAY else 0.4 if age > 6 * 3600 else 0.0
        r = rng.random()
        if r < shipped_share:
            ship_date = orderdate + rng.randint(3 * 3600, min(age, 3 * DAY))
            return 200, ship_date
        if age > 3 * DAY and r < shipped_share + 0.05:
            return 300, None
        return (0 if kind == CHECK else 100), None

    def _totals(self, order: Order, total: int, ship: int, tax: int) -> None:
        for name, cents in (("total", total), ("total_ship", ship), ("total_tax", tax),
                            ("total_auth", 0), ("total_capt", 0), ("total_rfnd", 0),
                            ("net_capt", 0)):  # fmt: skip
            order[name], order[f"formatted_{name}"] = money(cents), formatted(cents)

    def _charges(
        self,
        order_id: int,
        method: str,
        ship: int,
        promo: tuple[Any, ...] | None,
        discount: int,
        tax: int,
    ) -> list[dict[str, Any]]:
        rows = [("SHIPPING", 31, f"Shipping: {method}", ship)]
        if promo is not None and discount:
            rows.append(("DISCOUNT", 41 if promo[5] else 42, promo[1], -discount))
        if tax:
            rows.append(("TAX", 27, "Sales Tax", tax))
        return [self._charge(order_id, *row) for row in rows]

    def _charge(
        self, order_id: int, kind: str, module: int, descrip: str, cents: int
    ) -> dict[str, Any]:
        return {
            "order_id": order_id, "charge_id": self.next("charge", 9100),
            "module_id": module, "type": kind, "descrip": descrip,
            "amount": money(cents), "formatted_amount": formatted(cents),
            "disp_amt": money(cents), "formatted_disp_amt": formatted(cents),
            "tax_exempt": True, "tax": 0.0, "formatted_tax": "$0.00",
        }  # fmt: skip

    def _promo(self, order: Order, promo: tuple[Any, ...], discount: int) -> None:
        code, descrip, _, _, pgrp_id, coupon_id = promo
        if coupon_id:
            order["coupons"].append({
                "order_id": order["id"], "coupon_id": coupon_id, "code": code,
                "descrip": descrip, "total": money(discount), "assigned": True,
            })  # fmt: skip
        order["discounts"].append({
            "order_id": order["id"], "pgrp_id": pgrp_id, "name": code,
            "descrip": descrip, "total": money(discount),
        })  # fmt: skip

    def _payments(
        self, order: Order, kind: str, orderdate: int, until: int, status: int
    ) -> list[int]:
        """Payment records and pay status; returns the times of later payment events."""
        rng = self.rng
        if kind == CHECK:
            order["payment_module"] = catalog.CHECK_MODULE_CODE
            return []
        if kind == ADMIN:
            return []
        paid_at = orderdate + rng.randint(0, 5)
        if kind == ADMIN_PAID:
            paid_at = orderdate + rng.randint(DAY, 3 * DAY)
        paid_at = min(paid_at, until)
        module = catalog.PAYPAL_MODULE if kind == PAYPAL else catalog.CARD_MODULE
        capture = status == 200 or kind == ADMIN_PAID or rng.random() < 0.7
        if status == 300:
            self.add_payment(order, module, 3, paid_at)
            self.add_payment(
                order, module, 7, paid_at + 1 if paid_at < until else paid_at
            )
            order["pay_status"] = 0
            return [paid_at]
        self.add_payment(order, module, 5 if capture else 3, paid_at)
        return [paid_at]

    def add_payment(
        self, order: Order, module: dict[str, Any], pay_type: int, when: int
    ) -> None:
        """Append a payment record and set pay_status and the auth/capture totals."""
        rng = self.rng
        total = round(order["total"] * 100)
        card = rng.choice(catalog.CARDS)
        description = (
            "PayPal" if module["code"] == "paypalcp" else
            f"{card} ending in {rng.randint(1000, 9999)}"
        )  # fmt: skip
        order["payments"].append({
            "id": self.next("payment", 7000), "order_id": order["id"], "type": pay_type,
            "refnum": str(rng.randint(10**10, 10**11 - 1)), "amount": money(total),
            "formatted_amount": formatted(total),
            "available": money(total if pay_type in (3, 5) else 0),
            "formatted_available": formatted(total if pay_type in (3, 5) else 0),
            "dtstamp": when, "expires": when + 30 * DAY if pay_type == 3 else 0,
            "pay_id": module["id"], "pay_secid": 0, "decrypt_status": "",
            "decrypt_error": "", "description": description,
            "ip": f"203.0.113.{rng.randint(1, 254)}", "module": dict(module),
        })  # fmt: skip
        order["pay_id"] = module["id"]
        order["payment_module"] = module["code"]
        if pay_type == 7:  # void: nothing authorized any more
            auth = capt = 0
        else:
            auth, capt = total, total if pay_type == 5 else 0
        order["pay_status"] = 200 if capt else 100 if auth else 0
        for name, cents in (
            ("total_auth", auth),
            ("total_capt", capt),
            ("net_capt", capt),
        ):
            order[name], order[f"formatted_{name}"] = money(cents), formatted(cents)

    def _ship(self, order: Order, ship_date: int, carrier: str) -> None:
        rng = self.rng
        shipment_id = self.next("shipment", 600)
        tracknum = f"1Z{rng.randint(10**13, 10**14 - 1)}"
        weight = round(sum(i["weight"] * i["quantity"] for i in order["items"]), 2)
        cost = round(order["total_ship"] * 100 * 0.8)
        shipment = {
            "id": shipment_id, "code": f"SHP-{order['id']}-1",
            "batch_id": 1 + shipment_id // 20, "order_id": order["id"], "status": 200,
            "labelcount": 1, "ship_date": ship_date, "tracknum": tracknum,
            "tracktype": carrier, "tracklink": f"https://track.example.com/{tracknum}",
            "weight": weight, "cost": money(cost), "formatted_cost": formatted(cost),
        }  # fmt: skip
        order["shipments"].append(shipment)
        order["batch_id"] = shipment["batch_id"]
        for item in order["items"]:
            item.update(status=200, shpmnt_id=shipment_id, tracktype=carrier,
                        tracknum=tracknum, shipment=dict(shipment))  # fmt: skip

    def _notes(self, order: Order, kind: str, orderdate: int, until: int) -> list[int]:
        rng = self.rng
        times: list[int] = []
        texts: list[tuple[str, int, str]] = []
        if kind in (ADMIN, ADMIN_PAID):
            texts.append(("Phone order taken by admin", orderdate, "admin"))
        elif rng.random() < 0.12:
            texts.append((rng.choice(catalog.CUSTOMER_NOTES), orderdate, ""))
        if rng.random() < 0.08 and until > orderdate:
            when = rng.randint(orderdate + 1, until)
            texts.append((rng.choice(catalog.ADMIN_NOTES), when, "admin"))
            times.append(when)
        for text, when, admin in texts:
            order["notes"].append({
                "id": self.next("note", 50), "cust_id": order["cust_id"], "account_id": 0,
                "order_id": order["id"], "user_id": 1 if admin else 0, "notetext": text,
                "dtstamp": when, "cust_login": order["cust_login"],
                "business_title": order["business_title"], "admin_user": admin,
            })  # fmt: skip
        order["note_count"] = len(order["notes"])
        return times


def _address_of(cust: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k: cust[f"{prefix}_{k}"] for k in ADDRESS_FIELDS}


def _split(amount: int, weights: list[int]) -> list[int]:
    """Split cents in proportion to weights; the remainder goes to the largest."""
    total = sum(weights)
    if not amount or not total:
        return [0] * len(weights)
    shares = [amount * w // total for w in weights]
    shares[weights.index(max(weights))] += amount - sum(shares)
    return shares


def shift_dates(order: Order, delta: int) -> None:
    """Move every event of an order by ``delta`` seconds (a late number completing now)."""
    order["orderdate"] += delta
    order["dt_updated"] += delta
    for key, stamp in (("payments", "dtstamp"), ("notes", "dtstamp"),
                       ("shipments", "ship_date")):  # fmt: skip
        for row in order[key]:
            row[stamp] += delta


def record_customer_stats(orders: list[Order]) -> None:
    """Set each customer's order count and totals from the orders that carry it."""
    totals: dict[int, list[int]] = {}
    for order in orders:
        if order["cust_id"]:
            totals.setdefault(order["cust_id"], []).append(round(order["total"] * 100))
    for order in orders:
        cust = order["customer"]
        if not cust or cust.get("id") not in totals:
            continue
        cents = totals[cust["id"]]
        avg = sum(cents) // len(cents)
        cust.update(order_cnt=len(cents), order_tot=money(sum(cents)),
                    formatted_order_tot=formatted(sum(cents)), order_avg=money(avg),
                    formatted_order_avg=formatted(avg))  # fmt: skip


def generate_store(
    count: int,
    seed: int,
    now: int,
    *,
    burst_size: int | None = None,
    late_numbers: int | None = None,
    factory: OrderFactory | None = None,
) -> GeneratedStore:
    """Generate ``count`` visible orders (plus reserved late numbers) for a store."""
    rng = random.Random(seed)
    factory = factory or OrderFactory(random.Random(f"orders:{seed}"), now)
    hidden_n = late_numbers if late_numbers is not None else (
        max(1, count // 100) if count >= 20 else 0
    )  # fmt: skip
    total = count + hidden_n

    ids: list[int] = []
    skipped: list[int] = []
    next_id = 1000
    for i in range(total):
        forced = i == total // 3 and not skipped and total >= 50
        if i and (forced or rng.random() < 0.03):
            gap = rng.randint(1, 3)
            skipped.extend(range(next_id, next_id + gap))
            next_id += gap
        ids.append(next_id)
        next_id += 1

    # Increasing times over the last 90 days, newest a few minutes ago.
    # Most orders spread over 90 days, some in the last day, so short windows
    # (--since 2h) find orders too.
    times = sorted(
        now - rng.randint(120, SPAN if rng.random() < 0.85 else DAY)
        for _ in range(total)
    )
    if times:
        times[-1] = max(times[-1], now - rng.randint(60, 600))
    big = (
        burst_size
        if burst_size is not None
        else (min(160, count * 3 // 5) if count >= 10 else 0)
    )
    big = min(big, count)
    # The big burst sits mid-timeline, so recent days still hold ordinary orders.
    start = (total - big) // 2
    burst = range(start, start + big)
    for j in burst:
        times[j] = times[start]
    burst_updated = min(now, times[start] + 3600) if big else 0
    small = min(40, count // 10) if count >= 50 else 0
    second_start = start + big + (total - start - big) // 3
    second = range(second_start, second_start + min(small, (total - second_start) // 2))
    for j in second:
        times[j] = times[second_start]

    special = set(burst) | set(second)
    # Reserved numbers are recent ones: their baskets are still in checkout.
    pool = [j for j in range(total) if j not in special][-max(3 * hidden_n, 10) :]
    hidden_idx = set(rng.sample(pool, min(hidden_n, len(pool))))
    special |= hidden_idx
    ordinary = [j for j in range(total) if j not in special]
    late_idx = set(rng.sample(ordinary, min(count // 50, len(ordinary))))
    # A late number completes after one of the next few visible numbers; from the
    # newest down, so the order it overtakes already has its final date.
    visible = [j for j in range(total) if j not in hidden_idx]
    for j in sorted(late_idx, reverse=True):
        after = visible[visible.index(j) + 1 :][:5]
        if after:
            overtaken = rng.choice(after)
            times[j] = min(
                now - 1, max(times[j], times[overtaken] + rng.randint(1, 600))
            )
    kinds: dict[int, str] = {}
    if count >= 25:
        tail = [j for j in ordinary[int(len(ordinary) * 0.8) :] if j not in late_idx]
        for j in rng.sample(tail, min(len(tail), max(1, count // 40))):
            kinds[j] = ADMIN
        rest = [j for j in ordinary if j not in kinds]
        for j in rng.sample(rest, min(len(rest), max(1, count // 40))):
            kinds[j] = CHECK

    orders: list[Order] = []
    hidden: dict[int, Order] = {}
    for j, order_id in enumerate(ids):
        if j in hidden_idx:
            hidden[order_id] = factory.make(order_id, now, now, kind=kinds.get(j))
        elif j in burst:
            orders.append(
                factory.make(order_id, times[j], now, updated_at=burst_updated)
            )
        else:
            orders.append(factory.make(order_id, times[j], now, kind=kinds.get(j)))
    record_customer_stats(orders)
    bursts = [[ids[j] for j in group] for group in (burst, second) if len(group) > 1]
    return GeneratedStore(
        orders=orders,
        hidden=hidden,
        skipped=skipped,
        bursts=bursts,
        late=sorted(ids[j] for j in late_idx),
        next_id=next_id,
    )
