"""Deterministic seeded orders per shop.

Order ``i`` of a shop is derived from ``(seed, shop, i)`` alone, so any order can be
generated without the others: millions of orders stream in constant memory
(``iter_orders``) and two processes with the same seed agree byte for byte.

Money is exact (``Decimal``, 2 dp) and consistent inside an order:
``current_total = current_subtotal + current_tax + current_shipping`` and
``original_total - total_refunded = current_total`` (refund taxes are computed per
refund and subtracted, so no cent is lost to rounding).
"""

from __future__ import annotations

import _random
import random
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

CENT = Decimal("0.01")
ZERO = Decimal("0.00")

SHOP_CURRENCY = {"DA": "DKK", "DE": "EUR", "NL": "EUR", "INT": "USD", "CHF": "CHF", "DEMO": "EUR"}
DEFAULT_CURRENCY = "EUR"
# VAT-like rate per currency: taxes are added on top (taxesIncluded = false).
_TAX_RATE = {"DKK": Decimal("0.25"), "EUR": Decimal("0.21"), "USD": Decimal("0.08"), "CHF": Decimal("0.081")}
# Price scale per currency so that a DKK order looks like a DKK order.
_PRICE_SCALE = {"DKK": Decimal("7.5"), "EUR": Decimal("1"), "USD": Decimal("1.1"), "CHF": Decimal("0.95")}

CATALOG_PRODUCTS = 40
_ADJECTIVES = ("Classic", "Organic", "Vintage", "Urban", "Nordic", "Alpine", "Coastal", "Studio")
_NOUNS = ("Tee", "Hoodie", "Mug", "Tote Bag", "Beanie", "Notebook", "Candle", "Poster", "Socks", "Cap")
_VARIANT_NAMES = (("S", "M", "L"), ("Black", "White"), ("Default Title",), ("250 ml", "500 ml"))
_CUSTOM_TITLES = ("Gift wrapping", "Custom engraving", "Shipping protection")


def q2(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def shop_currency(shop: str) -> str:
    return SHOP_CURRENCY.get(shop, DEFAULT_CURRENCY)


def shop_number(shop: str) -> int:
    """A stable small number per shop, used to keep ids distinct across shops."""
    return zlib.crc32(shop.encode()) % 997


@dataclass(frozen=True)
class Variant:
    id: int
    product_id: int
    title: str
    sku: str
    price: Decimal


@dataclass(frozen=True)
class Product:
    id: int
    title: str
    variants: tuple[Variant, ...]


@dataclass(frozen=True)
class LineItem:
    id: int
    title: str
    sku: str | None
    product_id: int | None
    variant_id: int | None
    quantity: int
    current_quantity: int
    original_unit_price: Decimal
    discounted_unit_price: Decimal  # discountedUnitPriceAfterAllDiscountsSet

    @property
    def discounted_total(self) -> Decimal:
        """discountedTotalSet: includes refunded/removed units (Shopify's definition)."""
        return q2(self.discounted_unit_price * self.quantity)

    @property
    def original_total(self) -> Decimal:
        return q2(self.original_unit_price * self.quantity)


@dataclass(frozen=True)
class Refund:
    id: int
    created_at: datetime
    subtotal: Decimal
    tax: Decimal
    lines: tuple[tuple[int, int], ...] = ()  # (line_item_id, units)

    @property
    def total_refunded(self) -> Decimal:
        return self.subtotal + self.tax


@dataclass(frozen=True)
class Order:
    id: int
    shop: str
    name: str
    created_at: datetime
    updated_at: datetime
    processed_at: datetime
    cancelled_at: datetime | None
    test: bool
    currency_code: str
    display_financial_status: str
    display_fulfillment_status: str
    tax_rate: Decimal
    shipping: Decimal  # shipping charged at creation
    line_items: tuple[LineItem, ...]
    refunds: tuple[Refund, ...] = field(default=())

    # -- totals (after returns), as Shopify's current*Set --
    @property
    def original_subtotal(self) -> Decimal:
        return sum((li.discounted_unit_price * li.quantity for li in self.line_items), ZERO)

    @property
    def original_tax(self) -> Decimal:
        return q2(self.original_subtotal * self.tax_rate)

    @property
    def original_total(self) -> Decimal:
        return self.original_subtotal + self.original_tax + self.shipping

    @property
    def current_subtotal(self) -> Decimal:
        return sum((li.discounted_unit_price * li.current_quantity for li in self.line_items), ZERO)

    @property
    def current_total_discounts(self) -> Decimal:
        return sum(
            ((li.original_unit_price - li.discounted_unit_price) * li.current_quantity for li in self.line_items),
            ZERO,
        )

    @property
    def total_refunded(self) -> Decimal:
        return sum((r.total_refunded for r in self.refunds), ZERO)

    @property
    def current_shipping(self) -> Decimal:
        # Refunds here return goods (+ their tax) only; a cancellation zeroes the order.
        return ZERO if self.cancelled_at is not None else self.shipping

    @property
    def current_total_tax(self) -> Decimal:
        if self.cancelled_at is not None:
            return ZERO
        return self.original_tax - sum((r.tax for r in self.refunds), ZERO)

    @property
    def current_total(self) -> Decimal:
        return self.current_subtotal + self.current_total_tax + self.current_shipping


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=4096)
def _day_prefix(day: int) -> str:
    return (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")


# precomputed "HH:MM:" per minute of the day and "SSZ" per second: string formatting is
# the bulk of timestamp rendering, and every JSONL line has several timestamps
_HOUR_MINUTE = [f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440)]
_SECOND_Z = [f"{sec:02d}Z" for sec in range(60)]


def fmt_epoch(secs: int) -> str:
    """``2026-07-02T23:39:19Z`` from Unix seconds (the hot path of JSONL rendering)."""
    day, rest = divmod(secs, 86400)
    return _day_prefix(day) + _HOUR_MINUTE[rest // 60] + _SECOND_Z[rest % 60]


def fmt_ts(ts: datetime) -> str:
    """``2026-07-02T23:39:19Z`` (second precision, UTC)."""
    return fmt_epoch(int((ts - _EPOCH).total_seconds()))


def default_anchor(now: datetime | None = None) -> datetime:
    """Start of the next UTC hour: stable for an hour, so repeated starts agree."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


@lru_cache(maxsize=64)
def catalog(seed: int, shop: str) -> tuple[Product, ...]:
    """The shop's products and variants (stable per seed and shop)."""
    rng = random.Random(f"catalog:{seed}:{shop}")
    currency = shop_currency(shop)
    scale = _PRICE_SCALE.get(currency, Decimal(1))
    base = 8_000_000_000_000 + shop_number(shop) * 1_000_000
    products = []
    for p in range(CATALOG_PRODUCTS):
        pid = base + p * 10
        title = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {p + 1}"
        price = q2(Decimal(rng.randrange(500, 9000)) / 100 * scale)
        names = _VARIANT_NAMES[rng.randrange(len(_VARIANT_NAMES))]
        variants = tuple(
            Variant(
                id=44_000_000_000_000 + shop_number(shop) * 1_000_000 + p * 10 + v,
                product_id=pid,
                title=name,
                sku=f"{shop}-{p + 1:03d}-{v + 1}",
                price=price if v == 0 else q2(price * (1 + Decimal(v) / 10)),
            )
            for v, name in enumerate(names)
        )
        products.append(Product(id=pid, title=title, variants=variants))
    return tuple(products)


@dataclass(frozen=True)
class DatasetParams:
    seed: int
    shop: str
    orders: int
    days: int
    anchor: datetime


def order_id_base(shop: str) -> int:
    """Order ``i`` of ``shop`` has id ``order_id_base(shop) + i``."""
    return 5_000_000_000_000 + shop_number(shop) * 1_000_000_000


# --- generation ------------------------------------------------------------------------
# The random draws produce plain tuples (int cents, int epoch seconds): `generate_order`
# turns them into dataclasses, the fast JSONL writer renders them directly. One source
# of randomness, so both paths agree byte for byte (tested).

# (id, title, sku, product_id, variant_id, quantity, current_quantity, original_cents, discounted_cents)
DrawLine = tuple[int, str, str | None, int | None, int | None, int, int, int, int]
# (id, created_epoch, subtotal_cents, tax_cents, ((line_id, units), ...))
DrawRefund = tuple[int, int, int, int, tuple[tuple[int, int], ...]]


@dataclass(slots=True)
class Draw:
    """Order ``i`` in primitive form (see ``generate_order``); treat as read-only.

    Not frozen: a frozen dataclass's ``__init__`` goes through ``object.__setattr__`` per
    field, a measurable share of the generation time.
    """

    id: int
    name: str
    created: int
    updated: int
    processed: int
    cancelled: int | None
    test: bool
    currency: str
    financial: str
    fulfilment: str
    rate_num: int
    rate_den: int
    shipping: int
    lines: list[DrawLine]
    refunds: list[DrawRefund]


@dataclass(frozen=True)
class _ShopConstants:
    rng_base: int
    currency: str
    rate: Decimal
    rate_num: int
    rate_den: int
    # (title, sku, product_id, variant_id, price_cents) per product, variants as a tuple
    products: tuple[tuple[tuple[str, str, int, int, int], ...], ...]
    discounted: dict[tuple[int, int], int]  # (variant_id, pct) -> cents
    free_shipping_from: int
    shipping: int
    order_base: int
    line_base: int


def _cents(value: Decimal) -> int:
    return int(value * 100)


def round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half up (non-negative), as Decimal ROUND_HALF_UP."""
    return (2 * numerator + denominator) // (2 * denominator)


@lru_cache(maxsize=64)
def _constants(seed: int, shop: str) -> _ShopConstants:
    currency = shop_currency(shop)
    scale = _PRICE_SCALE.get(currency, Decimal(1))
    rate = _TAX_RATE.get(currency, Decimal("0.2"))
    num, den = rate.as_integer_ratio()
    products = tuple(
        tuple((prod.title, v.sku, prod.id, v.id, _cents(v.price)) for v in prod.variants)
        for prod in catalog(seed, shop)
    )
    discounted = {(v[3], pct): round_half_up(v[4] * (100 - pct), 100)
                  for variants in products for v in variants for pct in _DISCOUNTS}
    return _ShopConstants(
        rng_base=(seed * 1_000_003 + zlib.crc32(shop.encode())) << 32, currency=currency,
        rate=rate, rate_num=num, rate_den=den, products=products, discounted=discounted,
        free_shipping_from=_cents(q2(Decimal(75) * scale)), shipping=_cents(q2(Decimal("4.95") * scale)),
        order_base=order_id_base(shop),
        line_base=13_000_000_000_000 + shop_number(shop) * 10_000_000_000,
    )


_DISCOUNTS = (10, 15, 20, 30)
_LINE_COUNTS = (1, 1, 1, 2, 2, 2, 3, 3, 4, 5)
_QUANTITIES = (1, 1, 1, 1, 2, 2, 3, 4)


@lru_cache(maxsize=64)
def _epoch(ts: datetime) -> int:
    return int(ts.timestamp())


class _Timeline:
    """An order's update time: each later event moves ``updated`` past it (seconds after creation)."""

    __slots__ = ("created", "r", "upd")

    def __init__(self, r: Callable[[], float], created: int, upd: int) -> None:
        self.r, self.created, self.upd = r, created, upd

    def later(self, max_seconds: int) -> int:
        """A random moment 1 to ``max_seconds`` after creation (at least a minute); bumps ``upd``."""
        off = 60 + int(self.r() * (max(61, max_seconds) - 60))
        self.upd = max(self.upd, off)
        return self.created + off


def draw_order(p: DatasetParams, i: int) -> Draw:
    """The random draws of order ``i`` (0-based; creation time increases with ``i``).

    Hot path of ``write_jsonl``: ints only, and ``rng.random()`` only (``randrange`` and
    ``choice`` are several times slower in CPython). The helpers draw in a fixed order:
    changing that order changes every dataset.
    """
    k = _constants(p.seed, p.shop)
    # an int seed: hashing a str seed (sha512) would dominate the generation time
    # _random.Random: the C generator random.Random builds on; same stream for an int seed,
    # without the Python-level seed() wrapper
    r = _random.Random(k.rng_base + i).random
    span = p.days * 86400
    anchor = _epoch(p.anchor)
    # Creation times increase with i (Shopify ids grow over time) with jitter inside the slot.
    created_off = int((i + r()) * span / max(p.orders, 1))
    created = anchor - span + created_off
    age = span - created_off
    li_base = k.line_base + i * 8
    lines = _draw_lines(k, r, li_base)

    test = r() < 0.03
    processed = created
    if r() < 0.08:  # imported / POS orders: processed before they were created in Shopify
        processed = created - 60 * (5 + int(r() * (3 * 24 * 60 - 5)))
    t = _Timeline(r, created, int(r() * 120))  # updated: seconds after creation

    subtotal = sum(li[8] * li[5] for li in lines)
    shipping = 0 if subtotal >= k.free_shipping_from else k.shipping
    if age > 3 * 86400:
        fulfilment = "FULFILLED"
        t.later(min(age, 3 * 86400))
    else:
        fulfilment = ("UNFULFILLED", "UNFULFILLED", "PARTIALLY_FULFILLED")[int(r() * 3)]
    financial = "PAID" if r() > 0.04 else ("PENDING", "AUTHORIZED")[int(r() * 2)]
    cancelled = None
    refunds: list[DrawRefund] = []
    roll = r()
    window = min(age, 20 * 86400)
    if roll < 0.04:
        cancelled = t.later(min(age, 2 * 86400))
        lines = [li[:6] + (0,) + li[7:] for li in lines]
        fulfilment = "UNFULFILLED"
        financial = _cancel_refund(k, r, financial, cancelled, lines, subtotal + shipping, subtotal, li_base, refunds)
    elif roll < 0.19 and financial == "PAID" and age > 3600:
        financial = _partial_refund(k, r, k.rng_base + i, t.later, window, lines, li_base, refunds)
    if r() < 0.3:  # tags, notes, address edits: updates without money changes
        t.later(window)

    return Draw(
        id=k.order_base + i, name=f"#{1001 + i}", created=created, updated=min(created + t.upd, anchor),
        processed=processed, cancelled=cancelled, test=test, currency=k.currency, financial=financial,
        fulfilment=fulfilment, rate_num=k.rate_num, rate_den=k.rate_den, shipping=shipping, lines=lines,
        refunds=refunds,
    )


def _draw_lines(k: _ShopConstants, r: Callable[[], float], li_base: int) -> list[DrawLine]:
    lines: list[DrawLine] = []
    products = k.products
    n_products = len(products)
    for j in range(_LINE_COUNTS[int(r() * 10)]):
        qty = _QUANTITIES[int(r() * 8)]
        if r() < 0.05:
            unit = 100 + int(r() * 1400)
            lines.append((li_base + j, _CUSTOM_TITLES[int(r() * 3)], None, None, None, qty, qty, unit, unit))
            continue
        if r() < 0.6:  # a few best sellers, a long tail
            variants = products[min(int(1.0 / (1.0 - r()) ** (1 / 1.2)) - 1, n_products - 1)]
        else:
            variants = products[int(r() * n_products)]
        title, sku, pid, vid, price = variants[int(r() * len(variants))]
        disc = price
        if r() < 0.25:
            disc = k.discounted[(vid, _DISCOUNTS[int(r() * 4)])]
        lines.append((li_base + j, title, sku, pid, vid, qty, qty, price, disc))
    return lines


def _cancel_refund(k: _ShopConstants, r: Callable[[], float], financial: str, at: int, lines: list[DrawLine],
                   amount: int, subtotal: int, li_base: int, refunds: list[DrawRefund]) -> str:
    """A cancelled order's financial status; a paid one is mostly refunded in full (added to ``refunds``)."""
    if financial == "PAID" and r() < 0.6:
        tax = round_half_up(subtotal * k.rate_num, k.rate_den)
        refunds.append((li_base + 6, at, amount, tax, tuple((li[0], li[5]) for li in lines)))
        return "REFUNDED"
    return "VOIDED"


def _partial_refund(k: _ShopConstants, r: Callable[[], float], shuffle_seed: int, later: Callable[[int], int],
                    window: int, lines: list[DrawLine], li_base: int, refunds: list[DrawRefund]) -> str:
    """Refund some units of about half the lines (``lines`` updated in place); the new financial status."""
    victims = list(range(len(lines)))
    random.Random(shuffle_seed).shuffle(victims)
    refund_lines = []
    sub = 0
    for j in victims[: max(1, len(victims) // 2)]:
        li = lines[j]
        units = 1 + int(r() * li[5]) if li[5] > 1 else 1
        if len(lines) == 1 and units == li[5] and li[5] > 1:
            units -= 1  # keep single-line orders partially (not fully) refunded
        lines[j] = li[:6] + (li[5] - units,) + li[7:]
        refund_lines.append((li[0], units))
        sub += li[8] * units
    at = later(window)
    refunds.append((li_base + 6, at, sub, round_half_up(sub * k.rate_num, k.rate_den), tuple(refund_lines)))
    return "REFUNDED" if all(li[6] == 0 for li in lines) else "PARTIALLY_REFUNDED"


def _dec(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _dt(epoch: int) -> datetime:
    return _EPOCH + timedelta(seconds=epoch)


def generate_order(p: DatasetParams, i: int) -> Order:
    """Order ``i`` as Python objects (``Decimal`` money, aware UTC datetimes, int ids)."""
    d = draw_order(p, i)
    return Order(
        id=d.id, shop=p.shop, name=d.name, created_at=_dt(d.created), updated_at=_dt(d.updated),
        processed_at=_dt(d.processed), cancelled_at=None if d.cancelled is None else _dt(d.cancelled),
        test=d.test, currency_code=d.currency, display_financial_status=d.financial,
        display_fulfillment_status=d.fulfilment, tax_rate=_constants(p.seed, p.shop).rate, shipping=_dec(d.shipping),
        line_items=tuple(LineItem(li[0], li[1], li[2], li[3], li[4], li[5], li[6], _dec(li[7]), _dec(li[8]))
                         for li in d.lines),
        refunds=tuple(Refund(rf[0], _dt(rf[1]), _dec(rf[2]), _dec(rf[3]), rf[4]) for rf in d.refunds),
    )


def iter_orders(p: DatasetParams) -> Iterator[Order]:
    for i in range(p.orders):
        yield generate_order(p, i)
