"""Order columns: which are base, on-demand, searchable and sortable (docs/miva-api.md §4, §5.1)."""

from __future__ import annotations

# Base columns in the order a store emits them (docs/miva-api.md §5); returned
# without any on-demand column. dt_updated is dropped when the store predates 10.03.
BASE_COLUMNS: tuple[str, ...] = (
    "id", "pay_id", "batch_id", "status", "pay_status", "stk_status", "dt_instock",
    "orderdate", "cust_id", "ship_res",
    "ship_fname", "ship_lname", "ship_email", "ship_comp", "ship_phone", "ship_fax",
    "ship_addr1", "ship_addr2", "ship_city", "ship_state", "ship_zip", "ship_cntry",
    "bill_fname", "bill_lname", "bill_email", "bill_comp", "bill_phone", "bill_fax",
    "bill_addr1", "bill_addr2", "bill_city", "bill_state", "bill_zip", "bill_cntry",
    "ship_id", "ship_data", "source", "source_id",
    "total", "formatted_total", "total_ship", "formatted_total_ship",
    "total_tax", "formatted_total_tax", "total_auth", "formatted_total_auth",
    "total_capt", "formatted_total_capt", "total_rfnd", "formatted_total_rfnd",
    "net_capt", "formatted_net_capt", "pend_count", "bord_count", "note_count",
    "dt_updated",
)  # fmt: skip

# On-demand columns (docs/miva-api.md §4.4), in the order they are appended to a row.
ONDEMAND_COLUMNS: tuple[str, ...] = (
    "ship_method", "cust_login", "cust_pw_email", "business_title", "payment_module",
    "customer", "items", "charges", "coupons", "discounts", "payments", "notes",
    "parts", "shipments", "returns",
)  # fmt: skip

# payment_data is on-demand too but only with a Passphrase; CustomField_Values
# is requested with the colon syntax (docs/miva-api.md §3.5).
PAYMENT_DATA = "payment_data"
CUSTOM_FIELDS = "CustomField_Values"

# docs/miva-api.md §4.1 (dt_updated added separately when the store supports it).
SEARCHABLE: frozenset[str] = frozenset(
    [
        "id",
        "batch_id",
        "status",
        "pay_status",
        "orderdate",
        "dt_instock",
        "ship_res",
        "ship_fname",
        "ship_lname",
        "ship_email",
        "ship_comp",
        "ship_phone",
        "ship_fax",
        "ship_addr1",
        "ship_addr2",
        "ship_city",
        "ship_state",
        "ship_zip",
        "ship_cntry",
        "bill_fname",
        "bill_lname",
        "bill_email",
        "bill_comp",
        "bill_phone",
        "bill_fax",
        "bill_addr1",
        "bill_addr2",
        "bill_city",
        "bill_state",
        "bill_zip",
        "bill_cntry",
        "ship_id",
        "ship_data",
        "source",
        "source_id",
        "total",
        "total_ship",
        "total_tax",
        "total_auth",
        "total_capt",
        "total_rfnd",
        "net_capt",
        "pend_count",
        "bord_count",
        "cust_login",
        "cust_pw_email",
        "business_title",
        "note_count",
    ]
)

# docs/miva-api.md §4.2: searchable minus ship_id, plus payment_module.
SORTABLE: frozenset[str] = (SEARCHABLE - {"ship_id"}) | {"payment_module"}

NUMERIC: frozenset[str] = frozenset(
    [
        "id",
        "pay_id",
        "batch_id",
        "status",
        "pay_status",
        "stk_status",
        "orderdate",
        "dt_instock",
        "cust_id",
        "ship_id",
        "source_id",
        "total",
        "total_ship",
        "total_tax",
        "total_auth",
        "total_capt",
        "total_rfnd",
        "net_capt",
        "pend_count",
        "bord_count",
        "note_count",
        "dt_updated",
    ]
)

BOOLEAN: frozenset[str] = frozenset({"ship_res"})

# Fields answered from sorted indexes when a filter is a simple range on them.
INDEXED: frozenset[str] = frozenset({"id", "orderdate", "dt_updated"})

# Every key update_order() accepts.
ORDER_KEYS: frozenset[str] = (
    frozenset(BASE_COLUMNS) | frozenset(ONDEMAND_COLUMNS) | {CUSTOM_FIELDS}
)
