"""Proportion of days covered (PDC, Pharmacy Quality Alliance), per patient and drug class.

metrics.md, "Medication adherence": days covered ÷ days from the index date (the first fill in
the measurement period) to the end of the period. Eligible only with at least two fills on
different dates. Same drug (same code, or same name when no code is given): an early refill's
supply starts the day after the previous supply ends (shift forward). Different drugs of the
class: no shift, a day is covered if any of them is on hand. Supply past the period end is
truncated. The PDC is rounded to 4 decimals, then the patient is adherent if it is ≥ 0.80
(≥ 0.90 for antiretrovirals). Only handed-over (completed), undeleted dispensings count.

The dashboards use the named definition **"PDC, rolling 12 months"**: for a reference month,
the measurement period is the 12 months ending on the month's as-of day (`rolling_period`).

Everything is vectorised: the fills are read with one aggregate query (three integer lists and
one list of drug keys) and computed with numpy. The shift forward of one drug's fills, sorted by
date, is the recurrence ``start_i = max(d_i, start_{i-1} + s_{i-1})``; with ``P_i`` the supply of
the earlier fills of the same drug it becomes ``start_i = P_i + max_{j ≤ i}(d_j − P_j)``, a running
maximum. The union of the supplies of the drugs of one class is a gaps-and-islands sum over the
intervals sorted by start.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from django.utils.translation import gettext_lazy as _

EPOCH = date(1970, 1, 1)
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


# --- drug classes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DrugClass:
    """A class adherence is measured by, and how a dispensing is recognised as one of it when
    its `drug_class` is empty: by ATC code prefix, or by a fragment of the medicine's name."""

    key: str
    label: Any  # lazy text
    threshold: int  # in ten-thousandths: 8000 means PDC ≥ 0.8000 is adherent
    atc: tuple[str, ...] = ()
    names: tuple[str, ...] = ()  # lower-case fragments of Chinese or English generic names
    aliases: tuple[str, ...] = ()  # what `Dispense.drug_class` may say for this class
    exclude: tuple[str, ...] = ()  # names or ATC prefixes that are never of this class


CLASSES: dict[str, DrugClass] = {
    c.key: c
    for c in (
        # PQA's RASA: ACE inhibitors, angiotensin receptor blockers, direct renin inhibitors,
        # alone or combined.
        DrugClass(
            "rasa",
            _("RAS antagonists"),
            8000,
            atc=("C09",),
            names=("普利", "沙坦", "阿利吉仑", "pril", "sartan", "aliskiren"),
            aliases=(
                "rasa",
                "ras antagonists",
                "ras antagonist",
                "acei",
                "arb",
                "ace inhibitors",
                "angiotensin receptor blockers",
                "普利类",
                "沙坦类",
                "血管紧张素受体拮抗剂",
            ),
        ),  # fmt: skip
        DrugClass(
            "ccb",
            _("Calcium channel blockers"),
            8000,
            atc=("C08", "C09BB", "C09DB", "C10BX03", "C10BX07", "C10BX11", "C10BX14"),
            names=("地平", "维拉帕米", "地尔硫", "dipine", "verapamil", "diltiazem"),
            aliases=(
                "ccb",
                "calcium channel blockers",
                "calcium channel blocker",
                "钙通道阻滞剂",
                "钙拮抗剂",
                "地平类",
            ),
        ),  # fmt: skip
        DrugClass(
            "beta_blockers",
            _("Beta blockers"),
            8000,
            atc=("C07",),
            names=("洛尔", "卡维地洛", "olol", "carvedilol", "labetalol"),
            aliases=("beta blockers", "beta blocker", "β受体阻滞剂", "洛尔类"),
        ),  # fmt: skip
        DrugClass(
            "thiazides",
            _("Thiazide diuretics"),
            8000,
            atc=("C03A", "C03B", "C09BA", "C09DA", "C07B"),
            names=("噻嗪", "吲达帕胺", "氯噻酮", "thiazide", "indapamide", "chlorthalidone"),
            aliases=("thiazides", "thiazide diuretics", "噻嗪类利尿剂"),
        ),  # fmt: skip
        DrugClass(
            "statins",
            _("Statins"),
            8000,
            atc=("C10AA", "C10BA", "C10BX"),
            names=("他汀", "statin"),
            aliases=("statins", "statin", "他汀类", "他汀"),
            exclude=("nystatin", "制霉菌素"),
        ),  # fmt: skip
        DrugClass(
            "diabetes",
            _("Non-insulin diabetes medicines"),
            8000,
            atc=("A10B",),
            names=(
                "二甲双胍",
                "格列",
                "阿卡波糖",
                "伏格列波糖",
                "米格列醇",
                "鲁肽",
                "那肽",
                "度拉糖肽",
                "metformin",
                "glipizide",
                "glimepiride",
                "gliclazide",
                "glibenclamide",
                "glyburide",
                "gliquidone",
                "glinide",
                "glitazone",
                "gliptin",
                "gliflozin",
                "acarbose",
                "voglibose",
                "miglitol",
                "glutide",
                "exenatide",
                "lixisenatide",
            ),
            aliases=(
                "diabetes",
                "non-insulin diabetes medicines",
                "oral antidiabetics",
                "降糖药",
                "口服降糖药",
                "非胰岛素降糖药",
            ),
            exclude=("胰岛素", "insulin"),
        ),  # fmt: skip
        DrugClass(
            "antiretrovirals",
            _("Antiretrovirals"),
            9000,
            atc=("J05AE", "J05AG", "J05AJ", "J05AR", "J05AF01", "J05AF06"),
            names=(
                "依非韦伦",
                "奈韦拉平",
                "利匹韦林",
                "多拉韦林",
                "多替拉韦",
                "拉替拉韦",
                "比克替拉韦",
                "艾维雷韦",
                "洛匹那韦",
                "达芦那韦",
                "阿扎那韦",
                "齐多夫定",
                "阿巴卡韦",
                "efavirenz",
                "nevirapine",
                "rilpivirine",
                "doravirine",
                "etravirine",
                "dolutegravir",
                "raltegravir",
                "bictegravir",
                "elvitegravir",
                "cabotegravir",
                "lopinavir",
                "darunavir",
                "atazanavir",
                "zidovudine",
                "abacavir",
            ),
            aliases=("antiretrovirals", "antiretroviral", "arv", "art", "抗逆转录病毒药"),
            # Nirmatrelvir/ritonavir (J05AE30) is a five-day COVID-19 course, not HIV therapy.
            exclude=("J05AE30", "奈玛特韦", "nirmatrelvir"),
        ),  # fmt: skip
    )
}
DEFAULT_THRESHOLD = 8000
_ATC = re.compile(r"^[A-Z]\d\d[A-Z]{0,2}\d{0,2}$")


def class_label(key: str) -> Any:
    """The label of a class; a class named only by the dispensings is shown as they name it."""
    known = CLASSES.get(key)
    return known.label if known else key


def threshold_of(key: str) -> int:
    known = CLASSES.get(key)
    return known.threshold if known else DEFAULT_THRESHOLD


def classify(drug_class: str, code: str, name: str) -> tuple[str, ...]:
    """The classes a dispensing counts for: the one `drug_class` names (a known alias, or the
    text itself as a class of its own), else every class its ATC code or name belongs to (a
    combination product counts for each of its classes), else none (not measured)."""
    label = " ".join(drug_class.split()).casefold()
    if label:
        for known in CLASSES.values():
            if label == known.key or label in known.aliases:
                return (known.key,)
        return (label,)
    atc = code.strip().upper()
    lowered = name.casefold()
    found: list[str] = []
    for known in CLASSES.values():
        if any(atc.startswith(x.upper()) or x.casefold() in lowered for x in known.exclude):
            continue
        by_code = bool(_ATC.match(atc)) and atc.startswith(known.atc)
        if by_code or any(fragment in lowered for fragment in known.names):
            found.append(known.key)
    return tuple(found)


def drug_key(code: str, name: str) -> str:
    """What makes two dispensings "the same drug": the same code, or the same name when there is
    no code."""
    code = code.strip()
    return f"code:{code.casefold()}" if code else f"name:{' '.join(name.split()).casefold()}"


# --- periods --------------------------------------------------------------------------------


def day_number(day: date) -> int:
    return (day - EPOCH).days


def day_of(number: int) -> date:
    return EPOCH + timedelta(days=int(number))


def rolling_period(as_of: date) -> tuple[date, date]:
    """ "PDC, rolling 12 months": the 12 months ending on `as_of` (both days included)."""
    try:
        year_before = as_of.replace(year=as_of.year - 1)
    except ValueError:  # 29 February
        year_before = as_of.replace(year=as_of.year - 1, day=28)
    return year_before + timedelta(days=1), as_of


def rounded(covered: int, days: int) -> int:
    """covered ÷ days rounded half up to 4 decimals, in ten-thousandths (exact integers)."""
    return (covered * 20000 + days) // (2 * days)


# --- fills ----------------------------------------------------------------------------------


@dataclass
class Fills:
    """Dispensings as parallel arrays, one row per fill and class it counts for."""

    patient: IntArray
    day: IntArray  # days since 1970-01-01
    supply: IntArray
    klass: IntArray  # index into `classes`
    drug: IntArray  # same drug ⇔ same number
    classes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.patient)


def empty_fills() -> Fills:
    nothing = np.zeros(0, dtype=np.int64)
    return Fills(nothing, nothing, nothing, nothing, nothing, [])


def fills_from_rows(rows: Iterable[Sequence[Any]]) -> Fills:
    """Fills from (patient, handed-over date, days supply, drug class, code, name) rows."""
    patients: list[int] = []
    days: list[int] = []
    supplies: list[int] = []
    keys: list[str] = []
    for patient, handed, supply, drug_class, code, name in rows:
        patients.append(int(patient))
        days.append(day_number(handed))
        supplies.append(int(supply))
        keys.append(f"{drug_class}\x1f{code}\x1f{name}")
    return _fills(
        np.array(patients, dtype=np.int64),
        np.array(days, dtype=np.int64),
        np.array(supplies, dtype=np.int64),
        keys,
    )


def _fills(patient: IntArray, day: IntArray, supply: IntArray, keys: list[str]) -> Fills:
    """Expand each row into the classes its drug counts for (see `classify`)."""
    index = {key: i for i, key in enumerate(dict.fromkeys(keys))}
    combo = np.fromiter(map(index.__getitem__, keys), dtype=np.int64, count=len(keys))
    classes: list[str] = []
    class_index: dict[str, int] = {}
    drug_index: dict[str, int] = {}
    per_combo: list[list[tuple[int, int]]] = []
    for key in index:
        drug_class, code, name = (key.split("\x1f") + ["", ""])[:3]
        drug = drug_index.setdefault(drug_key(code, name), len(drug_index))
        pairs = []
        for cls in classify(drug_class, code, name):
            if cls not in class_index:
                class_index[cls] = len(classes)
                classes.append(cls)
            pairs.append((class_index[cls], drug))
        per_combo.append(pairs)
    widest = max((len(p) for p in per_combo), default=0)
    parts: list[tuple[IntArray, ...]] = []
    for k in range(widest):
        has = np.array([len(p) > k for p in per_combo], dtype=bool)
        cls_k = np.array([p[k][0] if len(p) > k else -1 for p in per_combo], dtype=np.int64)
        drug_k = np.array([p[k][1] if len(p) > k else -1 for p in per_combo], dtype=np.int64)
        rows = has[combo]
        picked = combo[rows]
        parts.append((patient[rows], day[rows], supply[rows], cls_k[picked], drug_k[picked]))
    if not parts:
        return empty_fills()
    p, d, s, c, g = (np.concatenate([part[i] for part in parts]) for i in range(5))
    return Fills(p, d, s, c, g, classes)


# What tells a dispensing's classes and drug apart. With both a class and a code, the name
# decides nothing (`classify`, `drug_key`) and is left out of the key: shorter to read.
KEY = (
    "drug_class || {sep} || code || CASE WHEN drug_class <> '' AND code <> '' THEN ''"
    " ELSE {sep} || name END"
)


def read_fills(
    organisation_id: int,
    first: date,
    last: date,
    patient_sql: tuple[str, Sequence[Any]] | None = None,
) -> Fills:
    """The completed, undeleted dispensings handed over from `first` to `last` (the patients of
    `patient_sql`, a `SELECT id …`, or the whole organisation), in one aggregate query."""
    from django.db import connection

    from careloop.patients.models import Dispense

    table = connection.ops.quote_name(Dispense._meta.db_table)
    if connection.vendor == "postgresql":
        day = "(when_handed_over - DATE '1970-01-01')"
        concat = "string_agg({}::text, ',')"
        keys = f"string_agg({KEY.format(sep='chr(31)')}, chr(30))"
    else:
        day = "CAST(julianday(when_handed_over) - 2440587.5 AS INTEGER)"
        concat = "group_concat({}, ',')"
        keys = f"group_concat({KEY.format(sep='char(31)')}, char(30))"
    adapt = connection.ops.adapt_datefield_value
    params: list[Any] = [organisation_id, adapt(first), adapt(last)]
    where = (
        "organisation_id = %s AND when_handed_over >= %s AND when_handed_over <= %s"
        " AND status = 'completed' AND deleted_at IS NULL AND days_supply > 0"
    )
    if patient_sql is not None:
        where += f" AND patient_id IN ({patient_sql[0]})"
        params.extend(patient_sql[1])
    # The four lists come from one aggregate over the same rows, so their items line up (on
    # PostgreSQL too: partial aggregates of parallel workers are combined row by row).
    sql = (
        f"SELECT count(*), {concat.format('patient_id')}, {concat.format(day)}, "  # noqa: S608
        f"{concat.format('days_supply')}, {keys} FROM {table} WHERE {where}"
    )
    with connection.cursor() as cur:
        cur.execute(sql, params)
        count, patients, days, supplies, names = cur.fetchone()
    if not count:
        return empty_fills()
    key_list = names.split("\x1e")
    if len(key_list) != count:  # a separator inside a medicine's name: read row by row
        return _read_rows(organisation_id, first, last, patient_sql)
    return _fills(_ints(patients, count), _ints(days, count), _ints(supplies, count), key_list)


def _ints(text: str, count: int) -> IntArray:
    values = np.fromstring(text, dtype=np.int64, sep=",")
    if len(values) != count:
        raise RuntimeError("dispensing lists of unequal length")
    return values


def _read_rows(
    organisation_id: int, first: date, last: date, patient_sql: tuple[str, Sequence[Any]] | None
) -> Fills:
    from careloop.patients.models import Dispense

    qs = Dispense.objects.filter(
        organisation_id=organisation_id,
        when_handed_over__gte=first,
        when_handed_over__lte=last,
        status=Dispense.Status.COMPLETED,
        deleted_at__isnull=True,
        days_supply__gt=0,
    )
    if patient_sql is not None:
        from django.db.models.expressions import RawSQL

        # The cohort's own SQL, built by the ORM with its parameters apart.
        cohort = RawSQL(patient_sql[0], tuple(patient_sql[1]))  # noqa: S611
        qs = qs.filter(patient_id__in=cohort)
    return fills_from_rows(
        qs.values_list("patient_id", "when_handed_over", "days_supply", "drug_class", "code",
                       "name").iterator(chunk_size=10_000)
    )  # fmt: skip


# --- the computation ------------------------------------------------------------------------


@dataclass
class Result:
    """One row per patient and class with at least one fill in the period."""

    first: date
    last: date
    patient: IntArray
    klass: IntArray  # index into `classes`
    classes: list[str]
    index_day: IntArray  # days since 1970-01-01: the first fill in the period
    fills: IntArray  # fills in the period
    covered: IntArray  # days covered from the index date to the end of the period
    days: IntArray  # days from the index date to the end of the period, both included
    pdc: IntArray  # rounded to 4 decimals, in ten-thousandths
    eligible: BoolArray  # ≥ 2 fills on different dates
    adherent: BoolArray  # eligible and PDC ≥ the class's threshold

    def __len__(self) -> int:
        return len(self.patient)

    def rows(self) -> list[dict[str, Any]]:
        """Readable rows (tests, drill-down pages)."""
        return [
            {
                "patient_id": int(self.patient[i]),
                "drug_class": self.classes[int(self.klass[i])],
                "index_date": day_of(int(self.index_day[i])),
                "fills": int(self.fills[i]),
                "covered": int(self.covered[i]),
                "days": int(self.days[i]),
                "pdc": float(self.pdc[i]) / 10000,
                "eligible": bool(self.eligible[i]),
                "adherent": bool(self.adherent[i]),
            }
            for i in range(len(self))
        ]

    def class_mask(self, key: str) -> BoolArray:
        if key not in self.classes:
            return np.zeros(len(self), dtype=bool)
        return self.klass == self.classes.index(key)

    def patients_where(self, mask: BoolArray) -> IntArray:
        return np.unique(self.patient[mask])

    def patient_status(self) -> tuple[IntArray, IntArray]:
        """(eligible patients, adherent patients): a patient is eligible when eligible in at
        least one class, and adherent when adherent in every class they are eligible in."""
        eligible = np.unique(self.patient[self.eligible])
        failing = np.unique(self.patient[self.eligible & ~self.adherent])
        return eligible, np.setdiff1d(eligible, failing, assume_unique=True)


def _order(keys: Sequence[IntArray]) -> IntArray:
    """The order sorting by `keys` (the first the most significant): one stable sort of a
    packed 63-bit key when the ranges fit (fast on the nearly sorted rows a table returns),
    else a lexicographic sort."""
    packed = np.zeros(len(keys[0]), dtype=np.int64)
    bits = 0
    for key in keys:
        low = int(key.min())
        width = int(key.max()) - low + 1
        need = max(1, width - 1).bit_length()
        bits += need
        if bits > 62:
            return np.lexsort(tuple(reversed(keys)))
        packed = (packed << need) | (key - low)
    return np.argsort(packed, kind="stable")


def compute(fills: Fills, first: date, last: date) -> Result:
    """PDC of every patient and class with a fill from `first` to `last` (see the module)."""
    lo, hi = day_number(first), day_number(last)
    keep = (fills.day >= lo) & (fills.day <= hi) & (fills.supply > 0)
    p, c, g = fills.patient[keep], fills.klass[keep], fills.drug[keep]
    d, s = fills.day[keep], fills.supply[keep]
    n = len(p)
    if n == 0:
        none = np.zeros(0, dtype=np.int64)
        no = none.astype(bool)
        return Result(first, last, none, none, list(fills.classes), none, none, none, none,
                      none, no, no)  # fmt: skip
    order = _order((p, c, g, d))
    p, c, g, d, s = p[order], c[order], g[order], d[order], s[order]

    # Shift forward within one drug: start_i = P_i + running max of (d_j − P_j).
    new_drug = np.ones(n, dtype=bool)
    new_drug[1:] = (p[1:] != p[:-1]) | (c[1:] != c[:-1]) | (g[1:] != g[:-1])
    drug_group = np.cumsum(new_drug) - 1
    before = np.cumsum(s) - s  # supply of all earlier rows
    prior = before - before[new_drug][drug_group]  # … of earlier fills of the same drug
    x = d - prior
    low = int(x.min())
    span = int(x.max()) - low + 1
    offset = drug_group * span  # keeps each drug's running maximum to itself
    start = np.maximum.accumulate(x - low + offset) - offset + low + prior
    end = np.minimum(start + s - 1, hi)  # truncated at the end of the period

    # One class: index date, fills, eligibility (two different dates ⇔ first ≠ last date).
    new_class = np.ones(n, dtype=bool)
    new_class[1:] = (p[1:] != p[:-1]) | (c[1:] != c[:-1])
    class_starts = np.flatnonzero(new_class)
    class_group = np.cumsum(new_class) - 1
    index_day = np.minimum.reduceat(d, class_starts)
    last_fill = np.maximum.reduceat(d, class_starts)
    count = np.diff(np.append(class_starts, n))

    # Union of the class's supplies: intervals by start; each adds what lies past the furthest
    # end of those before it.
    by_start = _order((class_group, start))
    grp, a, e = class_group[by_start], start[by_start], end[by_start]
    width = hi - lo + 2
    rel = e - (lo - 1)  # ≥ 1: every interval ends on or after the first day of the period
    reach = np.maximum.accumulate(rel + grp * width) - grp * width
    previous = np.empty(n, dtype=np.int64)
    previous[0] = 0
    previous[1:] = reach[:-1]
    previous[new_class] = 0  # the first interval of a class (grp is sorted like class_group)
    previous_end = previous + lo - 1
    added = np.maximum(0, e - np.maximum(previous_end, a - 1))
    covered = np.add.reduceat(added, class_starts)

    days = hi - index_day + 1
    pdc = (covered * 20000 + days) // (2 * days)
    eligible = last_fill > index_day
    thresholds = np.array([threshold_of(k) for k in fills.classes] or [0], dtype=np.int64)
    klass = c[class_starts]
    adherent = eligible & (pdc >= thresholds[klass])
    return Result(first, last, p[class_starts], klass, list(fills.classes), index_day, count,
                  covered, days, pdc, eligible, adherent)  # fmt: skip


def pdc(
    organisation_id: int,
    first: date,
    last: date,
    patient_sql: tuple[str, Sequence[Any]] | None = None,
) -> Result:
    """Read the fills of the period and compute every patient's PDC per class."""
    return compute(read_fills(organisation_id, first, last, patient_sql), first, last)
