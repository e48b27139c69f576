"""Static data the order generator draws from: people, places, products, modules."""

from __future__ import annotations

# A few names with accents on purpose: clients that hash or encode the body as
# ASCII break on them (docs/miva-api.md §10, pitfall 2).
FIRST_NAMES = (
    "Dana", "Alex", "Jordan", "Maria", "Liam", "Olivia", "Noah", "Emma", "Ava",
    "Ethan", "Sophia", "Mason", "Isabella", "Lucas", "Mia", "James", "Harper",
    "Benjamin", "Amelia", "Elijah", "José", "Zoë", "Siobhán", "Renée", "Björn",
    "Chloé", "Mateo", "Priya", "Wei", "Aiyana",
)  # fmt: skip
LAST_NAMES = (
    "Reyes", "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller",
    "Davis", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson",
    "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White",
    "O'Brien", "Müller", "Dubois", "Nguyen", "Patel", "Kowalski", "García",
)  # fmt: skip
STREETS = (
    "Harbor Way", "Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Pine St",
    "Elm St", "Lakeview Rd", "Sunset Blvd", "Hillcrest Ave", "River Rd",
)  # fmt: skip
# city, state, zip, country, sales-tax rate (per ten thousand)
PLACES = (
    ("San Diego", "CA", "92101", "US", 725),
    ("Los Angeles", "CA", "90012", "US", 725),
    ("New York", "NY", "10001", "US", 800),
    ("Austin", "TX", "73301", "US", 625),
    ("Seattle", "WA", "98101", "US", 650),
    ("Portland", "OR", "97201", "US", 0),
    ("Denver", "CO", "80202", "US", 290),
    ("Chicago", "IL", "60601", "US", 625),
    ("Miami", "FL", "33101", "US", 600),
    ("Boston", "MA", "02108", "US", 625),
    ("Toronto", "ON", "M5H 2N2", "CA", 0),
    ("London", "", "SW1A 1AA", "GB", 0),
)
COMPANIES = ("Acme Corp", "Globex", "Initech", "Umbrella Supply", "Stark Goods")

# code, name, sku, price in cents, weight, taxable, option attribute
PRODUCTS = (
    ("TSHIRT-BLK", "Black T-Shirt", "TSB-001", 2000, 0.5, True, "size"),
    ("TSHIRT-WHT", "White T-Shirt", "TSW-001", 2000, 0.5, True, "size"),
    ("HOODIE-GRY", "Grey Hoodie", "HDG-001", 4500, 1.2, True, "size"),
    ("MUG-01", "Logo Mug", "MUG-001", 1250, 1.1, True, None),
    ("CAP-NVY", "Ball Cap", "CAP-001", 1800, 0.3, True, "color"),
    ("STICKER-PK", "Sticker Pack", "STK-001", 600, 0.05, True, None),
    ("POSTER-A2", "Poster A2", "PST-002", 1500, 0.4, True, "finish"),
    ("BOTTLE-SS", "Steel Bottle", "BTL-001", 2400, 0.8, True, "color"),
    ("TOTE-CNV", "Canvas Tote", "TOT-001", 1600, 0.4, True, None),
    ("SOCKS-3PK", "Socks (3 pack)", "SCK-003", 1400, 0.3, True, "size"),
    ("BOOK-GUIDE", "Field Guide", "BK-101", 2999, 1.5, False, None),
    ("GIFTCARD-25", "Gift Card $25", "GC-025", 2500, 0.0, False, None),
)
# attribute code -> (prompt, attr_id, [(option code, prompt, extra cents)])
ATTRIBUTES = {
    "size": ("Size", 14, (("S", "Small", 0), ("M", "Medium", 0), ("L", "Large", 0),
                          ("XL", "Extra Large", 200))),
    "color": ("Color", 15, (("BLK", "Black", 0), ("NVY", "Navy", 0), ("RED", "Red", 0))),
    "finish": ("Finish", 16, (("MATTE", "Matte", 0), ("GLOSS", "Gloss", 300))),
}  # fmt: skip
# name, cents, carrier
SHIP_METHODS = (
    ("UPS Ground", 795, "UPS"),
    ("USPS Priority Mail", 895, "USPS"),
    ("FedEx 2Day", 1895, "FedEx"),
)
FREE_SHIPPING_OVER = 7500
# code, description, kind ("fixed" cents | "percent"), amount, price group id, coupon id
COUPONS = (
    ("SAVE5", "$5 off", "fixed", 500, 7, 12),
    ("WELCOME10", "10% off your first order", "percent", 10, 8, 13),
    ("SPRING15", "15% off spring sale", "percent", 15, 9, 14),
)
WHOLESALE = ("Wholesale", "Wholesale 5% price group", "percent", 5, 4, 0)

CARD_MODULE = {
    "id": 3, "code": "authnet", "name": "Authorize.Net", "provider": "Miva, Inc.",
    "api_ver": "10.03", "version": "10.03", "module": "features/pay/authnet.mvc",
    "refcount": 1, "active": True, "priority": 0,
}  # fmt: skip
PAYPAL_MODULE = {
    "id": 5, "code": "paypalcp", "name": "PayPal Complete Payments",
    "provider": "Miva, Inc.", "api_ver": "10.03", "version": "10.03",
    "module": "features/pay/paypalcp.mvc", "refcount": 1, "active": True, "priority": 1,
}  # fmt: skip
CHECK_MODULE_CODE = "check"
CARDS = ("Visa", "Mastercard", "American Express", "Discover")

CUSTOMER_NOTES = (
    "Gift wrap please", "Leave at the back door", "Please ship ASAP",
    "Birthday present - no invoice in the box", "Call before delivery",
)  # fmt: skip
ADMIN_NOTES = (
    "Customer called to change the shipping address",
    "Phone order taken by admin",
    "Replacement for a damaged item",
    "Check received, awaiting clearance",
)
GIFT_MESSAGES = ("Happy birthday!", "Congratulations!", "Thank you!", "Enjoy ❤")
