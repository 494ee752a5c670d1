#!/usr/bin/env python3
# ruff: noqa: E501  (long template strings are kept on one line each)
"""Generate the synthetic "legal document review" dataset used by tunesmith examples.

Each row is one contract clause (the user turn) and a JSON review of it (the
assistant turn), written from the point of view of the reviewing customer:

    {"clause_type": "<one of CLAUSE_TYPES>", "risk": "low|medium|high", "reason": "<one sentence>"}

The risk level is never drawn at random and pasted on: each (clause type, risk)
cell has its own clause templates whose wording and numbers satisfy that cell's
rule (see RULES and README.md), and the reason names the deciding feature with
the clause's own numbers.  Clauses get varied numbering, optional (sometimes
generic or misleading) headings, party names and number styles, so the answer
has to come from reading the clause body.

Output: train.jsonl (400 rows), eval.jsonl (60 rows, the selection split),
test.jsonl (100 rows).  No clause text occurs twice, within or across files,
and near-duplicates are rejected while generating (see NEAR), so the files pass
`tunesmith check --strict`.  Python 3.11 stdlib only; the output depends only on
--seed.

Usage: python examples/legal-review/make_data.py [--seed 0] [--out examples/legal-review]
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from pathlib import Path

CLAUSE_TYPES = [
    "indemnification", "limitation_of_liability", "termination", "confidentiality", "governing_law",
    "non_compete", "payment_terms", "auto_renewal", "assignment", "intellectual_property",
]
RISKS = ["low", "medium", "high"]
SPLITS = [("train", 400), ("eval", 60), ("test", 100)]

CLAUSE_WORDS = (30, 90)
REASON_WORDS = (10, 25)

# Near-duplicate rejection, a margin below `tunesmith check`'s 0.8: a row whose whole conversation text is at
# least this similar (Jaccard of 5-character shingles of the whitespace-collapsed, case-folded text) to an
# accepted row of the same split is redrawn, and so is an eval or test row whose prompt is this similar to a
# prompt of an earlier split (train, then eval).
NEAR = 0.75
SHINGLE = 5
ATTEMPTS = 200  # draws per (variant, template) pair before the next pair of the cell is tried

# The decision rules, one line per (type, risk).  README.md carries the same table.
RULES = {
    "indemnification": {
        "low": "mutual, fault-based indemnities, or the vendor alone indemnifies against IP infringement claims",
        "medium": "only the customer indemnifies, limited to claims caused by its own breach, misuse or data",
        "high": "the customer indemnifies for all claims regardless of fault (incl. the vendor's own negligence) or without any cap",
    },
    "limitation_of_liability": {
        "low": "cap of at least 12 months of fees (and none of the high-risk features)",
        "medium": "cap below 12 months of fees (and none of the high-risk features)",
        "high": "cap also covers the vendor's gross negligence / wilful misconduct, the customer's liability is uncapped while the vendor's is capped, or the vendor excludes all liability",
    },
    "termination": {
        "low": "either party may terminate for convenience with at least 30 days' notice",
        "medium": "either party may terminate for convenience, but with less than 30 days' notice",
        "high": "only the vendor may terminate for convenience",
    },
    "confidentiality": {
        "low": "mutual obligations lasting at least 3 years after the agreement ends (or indefinitely)",
        "medium": "mutual obligations lasting less than 3 years after the agreement ends",
        "high": "only the customer is bound, or the vendor may disclose the customer's information to third parties without consent",
    },
    "governing_law": {
        "low": "a named law and courts to which both parties submit on equal terms",
        "medium": "mandatory binding arbitration that excludes the courts (same for both parties)",
        "high": "asymmetric forum (the vendor may sue anywhere, the customer only in one court) or the vendor may change the governing law by notice",
    },
    "non_compete": {
        "low": "restriction on the customer of at most 12 months after the agreement ends, in a limited territory",
        "medium": "more than 12 months and at most 2 years, in a limited territory",
        "high": "more than 2 years, or worldwide scope",
    },
    "payment_terms": {
        "low": "payment due in 30 days or more, late interest at most 1.5% per month (or none)",
        "medium": "payment due in fewer than 30 days, late interest at most 1.5% per month (or none)",
        "high": "late interest above 1.5% per month, or the vendor may raise fees at any time by any amount",
    },
    "auto_renewal": {
        "low": "the vendor must remind the customer at least 60 days before renewal and the customer may opt out until the renewal date",
        "medium": "reminder 30 to 59 days before renewal",
        "high": "reminder fewer than 30 days before renewal, or no reminder at all",
    },
    "assignment": {
        "low": "neither party may assign without the other's consent (exceptions, if any, apply to both)",
        "medium": "the vendor may assign to affiliates or successors without consent but with notice; the customer needs consent",
        "high": "the vendor may assign or subcontract to any third party without consent or notice",
    },
    "intellectual_property": {
        "low": "the customer owns the deliverables made for it (and keeps its own data)",
        "medium": "the vendor owns the deliverables but grants a perpetual, irrevocable, royalty-free licence",
        "high": "the customer must hand over rights in its own data or materials, or gets only a revocable or term-limited licence",
    },
}

# --------------------------------------------------------------------------
# Vocabularies (all invented)
# --------------------------------------------------------------------------

# (vendor role, customer role)
ROLES = [
    ("Supplier", "Customer"), ("Provider", "Customer"), ("Service Provider", "Client"), ("Vendor", "Purchaser"),
    ("Licensor", "Licensee"), ("Contractor", "Client"), ("Supplier", "Buyer"), ("Provider", "Client"),
    ("Vendor", "Customer"), ("Consultant", "Client"),
]
VENDOR_NAMES = [
    "Brightwater Analytics Ltd.", "Kessgrove Systems Inc.", "Northvale Software GmbH", "Tidemark Data Services B.V.",
    "Halcyon Cloudworks Pty Ltd", "Quillon Labs S.A.S.", "Peregrine Fleet Solutions Inc.", "Stonebridge Payroll Ltd.",
    "Veldmoor Robotics AB", "Ambergate Hosting LLC", "Corrivale Security Ltd.", "Larkspur Metrics Inc.",
    "Oxhollow Digital Ltd.", "Saltmarsh Engineering plc", "Fenwright Consulting LLP", "Driftline Telematics Oy",
]
CUSTOMER_NAMES = [
    "Marrowby Retail Group Ltd.", "Ashgrove Health Partners LLP", "Orchard Lane Logistics LLC", "Pellham Foods plc",
    "Riverholt Insurance Inc.", "Cobbleton Housing Association", "Wexmoor Manufacturing GmbH", "Glenfarrow Hotels Ltd.",
    "Tallis & Reeve Architects LLP", "Harbourne Dental Group Inc.", "Kilnworth Ceramics Ltd.", "Sunmere Schools Trust",
]
SERVICES = ["Services", "Software", "Platform", "Subscription Services", "Hosted Services", "Deliverables",
            "Products", "Licensed Software", "Support Services", "Cloud Service"]
# (governing law, courts)
LAWS = [
    ("England and Wales", "London"), ("the State of New York", "New York County, New York"), ("Ireland", "Dublin"),
    ("the Netherlands", "Amsterdam"), ("Singapore", "Singapore"), ("the State of Delaware", "Wilmington, Delaware"),
    ("Scotland", "Edinburgh"), ("the Province of Ontario", "Toronto"), ("New South Wales", "Sydney"),
    ("Germany", "Frankfurt am Main"), ("Sweden", "Stockholm"), ("the State of California", "San Francisco, California"),
    ("Switzerland", "Zurich"), ("the State of Texas", "Austin, Texas"), ("Denmark", "Copenhagen"),
]
ARB_RULES = ["ICC Rules of Arbitration", "LCIA Arbitration Rules", "SIAC Rules", "UNCITRAL Arbitration Rules",
             "Commercial Arbitration Rules of the American Arbitration Association", "Swiss Rules of International Arbitration"]
SEATS = ["London", "Geneva", "Singapore", "Paris", "Stockholm", "New York", "Hong Kong", "Vienna", "Dublin", "Zurich"]
REGIONS = [
    "the United Kingdom", "Ireland", "the State of California", "the Province of Ontario", "Germany, Austria and Switzerland",
    "the Benelux countries", "the Nordic countries", "the Republic of Singapore", "New South Wales", "Scotland",
    "the State of Illinois", "France", "the Iberian Peninsula", "the Province of Quebec", "Victoria, Australia",
]
WORLDWIDE = ["anywhere in the world", "in any country or territory", "worldwide", "in any jurisdiction whatsoever",
             "in any market globally"]
FIELDS = [
    "fleet telematics software", "payroll outsourcing services", "industrial sensor calibration services",
    "online tutoring platforms", "cold-chain logistics software", "veterinary practice management software",
    "solar array monitoring services", "restaurant booking systems", "warehouse robotics integration",
    "clinical trial scheduling tools", "tenant screening services", "e-invoicing software",
]
CURRENCIES = ["USD", "EUR", "GBP", "CAD", "AUD", "SGD", "CHF", "SEK"]
RATE_WORDS = {0.5: "one half of one percent", 1: "one percent", 1.25: "one and a quarter percent",
              1.5: "one and a half percent", 2: "two percent", 2.5: "two and a half percent", 3: "three percent",
              4: "four percent", 5: "five percent"}

HEADINGS = {
    "indemnification": ["Indemnification", "Indemnity", "Indemnities", "Third-Party Claims"],
    "limitation_of_liability": ["Limitation of Liability", "Limitations of Liability", "Liability", "Liability Cap"],
    "termination": ["Termination", "Termination for Convenience", "Term and Termination", "Termination Rights"],
    "confidentiality": ["Confidentiality", "Confidential Information", "Non-Disclosure", "Confidentiality Obligations"],
    "governing_law": ["Governing Law", "Governing Law and Jurisdiction", "Dispute Resolution", "Applicable Law"],
    "non_compete": ["Non-Competition", "Restrictive Covenants", "Non-Compete", "Restrictions on Competition"],
    "payment_terms": ["Payment Terms", "Fees and Payment", "Invoicing and Payment", "Payment"],
    "auto_renewal": ["Renewal", "Automatic Renewal", "Term and Renewal", "Renewal Term"],
    "assignment": ["Assignment", "Assignment and Subcontracting", "Transfer of Rights", "Assignment and Novation"],
    "intellectual_property": ["Intellectual Property", "Ownership", "Intellectual Property Rights", "Ownership of Deliverables"],
}
GENERIC_HEADINGS = ["General", "Miscellaneous", "Commercial Terms", "Additional Terms", "Rights and Obligations",
                    "Other Provisions", "Special Conditions", "Legal Terms"]
# a plausible but wrong heading: borrowed from a neighbouring clause type
MISLEADING = {
    "indemnification": ["limitation_of_liability"],
    "limitation_of_liability": ["indemnification"],
    "termination": ["auto_renewal"],
    "confidentiality": ["intellectual_property"],
    "governing_law": ["termination", "assignment"],
    "non_compete": ["confidentiality"],
    "payment_terms": ["auto_renewal", "termination"],
    "auto_renewal": ["termination", "payment_terms"],
    "assignment": ["governing_law", "termination"],
    "intellectual_property": ["confidentiality", "payment_terms"],
}

# --------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def words(n: int) -> str:
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else "-" + ONES[n % 10])
    rest = n % 100
    return ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + words(rest))


def qty(n: int, unit: str, style: str) -> str:
    """A count as a contract writes it: 'thirty (30) days', '30 days' or 'thirty days'."""
    u = unit if n == 1 else unit + "s"
    if style == "both":
        return f"{words(n)} ({n}) {u}"
    if style == "digits":
        return f"{n} {u}"
    return f"{words(n)} {u}"


def rq(n: int, unit: str) -> str:
    """A count as the reasons write it: words up to twelve, digits above."""
    u = unit if n == 1 else unit + "s"
    return f"{words(n) if n <= 12 else n} {u}"


def pct(p: float) -> str:
    return f"{p:g}%"


def rate(p: float, style: str) -> str:
    if style == "both":
        return f"{RATE_WORDS[p]} ({pct(p)})"
    return pct(p)


# --------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------
# V(feature, templates, reasons, numbers).  "[a|b|c]" picks one option, "[a|]"
# makes "a" optional.  {v}/{V} is the vendor ("the Supplier" / "The Supplier"),
# {c}/{C} the customer, {svc} a defined term for what is supplied.  `numbers`
# fills the numeric slots: each slot gets a clause form ({x}) and a reason form
# ({x_r}).  Reasons are one sentence that names the deciding feature.


def V(feature, templates, reasons, numbers=None):
    return {"feature": feature, "templates": templates, "reasons": reasons, "numbers": numbers or (lambda rng, s: None)}


def num_slot(s: dict, key: str, n: int, unit: str) -> None:
    s[key] = qty(n, unit, s["style"])
    s[key + "_r"] = rq(n, unit)
    s[key + "_n"] = n


def nums(**spec):
    """nums(d=("day", [30, 60])) -> sampler that draws each slot from its list."""
    def sample(rng, s):
        for key, (unit, values) in spec.items():
            num_slot(s, key, rng.choice(values), unit)
    return sample


INDEMNIFY = "[indemnify, defend and hold harmless|defend, indemnify and hold harmless|indemnify and hold harmless|indemnify and keep indemnified]"
SHALL = "[shall|will]"

CELLS: dict[str, dict[str, list]] = {}

CELLS["indemnification"] = {
    "low": [
        V("mutual", [
            "Each party (the \"Indemnifying Party\") {shall} " + INDEMNIFY + " the other party and its [officers, directors and employees|affiliates and personnel] from and against any third-party claims, losses and [reasonable legal fees|reasonable attorneys' fees|costs] to the extent arising from the Indemnifying Party's [breach of this Agreement|material breach of this Agreement|negligence or wilful misconduct].",
            "{V} and {c} [each agree|mutually agree] to indemnify the other against [all|any] losses, damages and [expenses|costs] resulting from third-party claims [caused by|attributable to] the indemnifying party's [breach of this Agreement|breach of its obligations hereunder|negligent acts or omissions], provided that the indemnified party gives prompt written notice of the claim[ and reasonable cooperation in its defence|].",
            "[Subject to Section {ref},|] each party {shall} be responsible for, and {shall} indemnify the other against, third-party claims to the extent they are caused by its own [negligence|fault], breach of this Agreement or [violation of applicable law|breach of applicable law]. Neither party is required to indemnify the other for losses caused by the other party's own conduct.",
        ], [
            "Indemnities are mutual and limited to third-party losses caused by each party's own breach or fault.",
            "Each party indemnifies the other only for claims arising from its own conduct, a balanced and fault-based allocation.",
            "The indemnity is reciprocal and fault-based, so {c} never carries {v}'s own risks.",
        ]),
        V("vendor_ip", [
            "{V} {shall} [defend|defend and indemnify] {c} against any claim alleging infringement of [a third party's patent, copyright or trade secret|any third-party intellectual property right] by the {svc} as delivered by {v}, and {shall} pay all damages and costs finally awarded[ or agreed in settlement|]. {C} {shall} notify {v} promptly of [the|any such] claim and allow {v} to control its defence.",
            "If a third party alleges that {c}'s authorised use of the {svc} infringes its intellectual property rights, {v} {shall} defend the claim at its own expense and indemnify {c} against [any resulting damages, costs and settlement amounts|all resulting losses and costs][, provided {c} notifies {v} within {d} of becoming aware of it|].",
        ], [
            "{V} bears the indemnity for intellectual property infringement claims, which protects {c} instead of burdening it.",
            "Only {v} gives an indemnity, covering third-party infringement claims against {c}, a customer-favourable position.",
            "The clause makes {v} defend and indemnify {c} against infringement claims, so the risk sits with {v}.",
        ], nums(d=("day", [10, 14, 15, 30]))),
    ],
    "medium": [
        V("customer_limited", [
            "{C} {shall} " + INDEMNIFY + " {v} from and against any third-party claims, [damages|losses] and reasonable costs to the extent [arising from|caused by] {c}'s breach of this Agreement or its [negligent|unlawful] use of the {svc}. [{V} gives no corresponding indemnity to {c}.|No indemnity is given by {v} under this Agreement.]",
            "{C} agrees to indemnify {v} against losses arising from any third-party claim that [results from|is caused by] {c}'s [misuse of|unauthorised modification of] the {svc} or breach of Section {ref}, subject to {v} giving prompt notice of the claim. This is the only indemnity in this Agreement[ and is not matched by any indemnity from {v}|].",
            "{C} {shall}, at its own expense, defend {v} against third-party claims [arising out of|resulting from] [content|data|materials] supplied by {c}, and {shall} pay any damages finally awarded, but only to the extent the claim is caused by {c}'s own [fault|breach|negligence]. {V} {shall} have no indemnification obligations [to {c}|under this Agreement].",
        ], [
            "Only {c} gives an indemnity, though it is limited to claims caused by its own breach or misuse.",
            "The indemnity runs one way from {c} to {v}, but covers only losses caused by {c}'s own conduct.",
            "{C} alone indemnifies, which is one-sided, yet the obligation is confined to claims arising from its own fault.",
        ]),
    ],
    "high": [
        V("customer_all_claims", [
            "{C} {shall} " + INDEMNIFY + " {v} and its affiliates from and against any and all claims, losses, liabilities and expenses [of whatever nature|howsoever arising] in connection with this Agreement, including those [caused by|resulting from] the negligence of {v}[, and such obligation is not subject to any limitation of liability|].",
            "{C} [agrees to|{shall}] indemnify {v} in full for all losses, [fines|penalties], damages and legal costs arising out of or relating to the {svc} or this Agreement, [regardless of|irrespective of] which party was at fault[, and without any cap|].",
            "Notwithstanding anything to the contrary, {c} {shall} reimburse and hold {v} harmless against every claim brought by any person in connection with the {svc}, whether or not such claim results from {v}'s own acts or omissions.",
        ], [
            "{C} must indemnify {v} for all claims, even those caused by {v}'s own negligence or fault.",
            "The indemnity from {c} applies regardless of fault, so {c} carries losses that {v} itself causes.",
            "{C} gives a blanket indemnity covering any claim however arising, including {v}'s own negligence.",
        ]),
        V("customer_uncapped", [
            "{C} {shall} " + INDEMNIFY + " {v} against all third-party claims arising from {c}'s use of the {svc}. {C}'s obligations under this Section {ref} are unlimited in amount and {shall} not be subject to [Section {ref2}|the limitation of liability] or any other cap.",
            "[Without prejudice to any other remedy,|] {c} {shall} indemnify {v} for all losses, costs and expenses arising from any claim relating to {c}'s [data|instructions|business operations], and [no limitation of liability applies to this indemnity|this indemnity is uncapped]. {V} gives no indemnity to {c}.",
        ], [
            "{C}'s indemnity to {v} is uncapped and excluded from any limitation of liability, an open-ended exposure.",
            "The one-way indemnity from {c} has no financial cap, so {c}'s exposure under it is unlimited.",
            "{C} carries an uncapped indemnity in favour of {v} with nothing given in return.",
        ]),
    ],
}

LOL_LEAD = "[Except for liability arising from fraud, gross negligence or wilful misconduct|Save in respect of fraud, death or personal injury caused by negligence|Except for breach of confidentiality and a party's indemnification obligations|To the maximum extent permitted by law]"
CELLS["limitation_of_liability"] = {}
for _risk, _months in (("low", [12, 18, 24, 36]), ("medium", [1, 2, 3, 6, 9])):
    CELLS["limitation_of_liability"][_risk] = [
        V("cap", [
            LOL_LEAD + ", {v}'s [total aggregate|aggregate|maximum] liability [arising out of or in connection with|under or in relation to] this Agreement {shall} not exceed the [total |]fees paid [or payable |]by {c} in the {m} preceding the [event giving rise to the claim|claim].",
            "Each party's [cumulative|total] liability under this Agreement[, whether in contract, tort or otherwise,|] is limited to an amount equal to {m} of fees[ under this Agreement|]. This cap does not apply to [fraud, gross negligence or wilful misconduct|a party's fraud or wilful misconduct|death or personal injury, fraud or gross negligence].",
            "Neither party {shall} be liable for indirect or consequential losses[, including loss of profits|]. Subject to the foregoing and except in cases of fraud or wilful misconduct, {v}'s liability for all claims {shall} be capped at the charges paid by {c} for the {m} immediately before the claim arose.",
            "The liability of {v} for any and all claims [relating to the {svc}|under this Agreement] is limited to the fees attributable to {m} of service. Nothing in this Agreement limits liability for gross negligence, wilful misconduct or fraud.",
        ], {
            "low": [
                "Liability is capped at {m_r} of fees, which meets the twelve-month benchmark for a fair cap.",
                "The cap of {m_r} of fees is at or above the usual twelve-month level, adequate for {c}.",
                "{V}'s liability cap equals {m_r} of fees, at or above the twelve-month benchmark, a balanced position.",
            ],
            "medium": [
                "Liability is capped at {m_r} of fees, below the twelve-month benchmark.",
                "The cap of only {m_r} of fees falls short of the usual twelve months of fees.",
                "{V}'s exposure is limited to {m_r} of fees, less than the twelve-month standard for {c}.",
            ],
        }[_risk], nums(m=("month", _months))),
    ]
CELLS["limitation_of_liability"]["high"] = [
    V("cap_covers_gross", [
        "{V}'s total liability for all claims, including claims arising from its gross negligence, wilful misconduct or breach of confidentiality, {shall} in no event exceed the fees paid [by {c} |]in the {m} preceding the claim.",
        "The limitation in this Section {ref} applies to all causes of action, whether arising from negligence, gross negligence, wilful default or otherwise, and {v}'s aggregate liability {shall} not exceed {m} of fees.",
    ], [
        "The cap also covers {v}'s gross negligence and wilful misconduct, leaving {c} exposed to serious fault.",
        "Even gross negligence and wilful misconduct by {v} fall under the cap of {m_r} of fees, unacceptable for {c}.",
        "No carve-out exists for gross negligence or wilful misconduct, so {v}'s serious fault is capped.",
    ], nums(m=("month", [3, 6, 12, 24]))),
    V("customer_uncapped", [
        "{V}'s liability {shall} not exceed the fees paid in the {m} preceding the claim. The foregoing limitation {shall} not apply to {c}, whose liability under this Agreement is unlimited.",
        "{V}'s aggregate liability is capped at {m} of fees[ paid under this Agreement|]. No cap or exclusion of liability [applies to|benefits] {c}, which {shall} remain liable in full for all losses[ suffered by {v}|].",
    ], [
        "{C}'s liability is unlimited while {v}'s is capped at {m_r} of fees, a one-sided allocation.",
        "Only {v} benefits from a liability cap; {c} remains fully liable without any limit.",
        "The cap protects {v} alone and leaves {c}'s liability uncapped, an asymmetric allocation against {c}.",
    ], nums(m=("month", [3, 6, 12, 24]))),
    V("total_exclusion", [
        "To the fullest extent permitted by law, {v} {shall} have no liability whatsoever to {c} for any loss or damage[ of any kind|], whether direct or indirect, and {c}'s sole remedy for any failure of the {svc} {shall} be to stop using the {svc}.",
        "{V} {shall} not be liable to {c} [under any circumstances|in any event] for any losses, damages, costs or expenses arising from the {svc}, [including|even in the case of] loss of data or service interruption. {C} waives all claims against {v}.",
    ], [
        "{V} excludes all liability for any loss, leaving {c} with no meaningful remedy.",
        "The clause removes every claim {c} might have against {v}, a complete exclusion of liability.",
        "{V} accepts no liability at all, so {c} cannot recover even direct losses.",
    ]),
]

TERM_TAIL = "[ Termination {shall} not affect rights or liabilities accrued before the date of termination.| Fees for services performed up to the effective date of termination remain payable.| {V} {shall} refund any prepaid fees covering the period after termination.|]"
CELLS["termination"] = {}
for _risk, _days in (("low", [30, 45, 60, 90]), ("medium", [5, 7, 10, 14, 15, 21])):
    CELLS["termination"][_risk] = [
        V("mutual", [
            "Either party may terminate this Agreement [for convenience|for any reason|without cause] by giving the other party not less than {d}' [prior |]written notice[ specifying the termination date| sent to the address set out in Section {ref}|]. [The notice may be given at any time during the Term.|No compensation is payable by either party solely because of such termination.]" + TERM_TAIL,
            "Each of {v} and {c} {shall} have the right to end this Agreement at any time, without cause, on {d}' written notice to the other." + TERM_TAIL,
            "This Agreement may be terminated by either party [at will|for convenience] upon at least {d}' written notice, or immediately by written notice if the other party commits a material breach that remains uncured {cure} after notice.",
            "[Without prejudice to Section {ref},|] {c} and {v} may each terminate this Agreement, in whole or in part, [for convenience|without giving reasons] by serving {d}' notice in writing on the other party." + TERM_TAIL,
        ], {
            "low": [
                "Either party may terminate for convenience on {d_r}' notice, a mutual right with adequate notice.",
                "The convenience termination right is mutual and requires {d_r}' notice, meeting the thirty-day benchmark.",
                "Both parties can exit on {d_r}' written notice, which gives {c} fair and equal flexibility.",
            ],
            "medium": [
                "The termination right is mutual, but a notice period of only {d_r} is shorter than the thirty-day benchmark.",
                "Either party may terminate on only {d_r}' notice, too short for {c} to arrange a replacement.",
                "Termination for convenience is mutual, yet {d_r}' notice falls below the usual thirty days.",
            ],
        }[_risk], nums(d=("day", _days), cure=("day", [10, 14, 30]))),
    ]
CELLS["termination"]["high"] = [
    V("vendor_only", [
        "{V} may terminate this Agreement [at any time|for convenience|at its sole discretion] by giving {c} {d}' written notice. {C} may terminate only for {v}'s [uncured material breach|material breach that remains unremedied {cure} after notice].",
        "{V} reserves the right to suspend or terminate the {svc} at any time[, with or without cause,|] upon {d}' notice to {c}, and {shall} have no liability to {c} for such termination. {C} has no right to terminate for convenience.",
        "{V} may end this Agreement for any reason or no reason[ on {d}' notice|, effective immediately upon notice]; {c} {shall} have no right to terminate for convenience and {shall} remain liable for all fees for the remainder of the then-current term.",
        "This Agreement may be terminated by {v} without cause on {d}' notice[ to {c}|], in which case {v} {shall} have no further obligation to provide the {svc}. [Termination by {c} is permitted only|{C} may terminate only] where {v} is in material breach[ or becomes insolvent|].",
    ], [
        "Only {v} can terminate for convenience, while {c} has no equivalent right.",
        "The convenience termination right is one-sided in favour of {v}, leaving {c} exposed to an abrupt exit.",
        "{V} may walk away without cause, but {c} can terminate only for breach, a one-sided right.",
    ], nums(d=("day", [7, 14, 30, 60, 90]), cure=("day", [30, 45, 60]))),
]

CELLS["confidentiality"] = {}
for _risk, _dur in (("low", [("year", 3), ("year", 4), ("year", 5), ("year", 7), ("month", 36), ("month", 60)]),
                    ("medium", [("year", 1), ("year", 2), ("month", 6), ("month", 12), ("month", 18), ("month", 24)])):
    def _conf_sampler(dur):
        def sample(rng, s):
            unit, n = rng.choice(dur)
            num_slot(s, "y", n, unit)
        return sample
    CELLS["confidentiality"][_risk] = [
        V("mutual", [
            "Each party {shall} keep confidential all [non-public|proprietary] information disclosed by the other party[ under this Agreement|], use it solely to perform this Agreement and disclose it only to employees and advisers who need to know it. These obligations [survive|{shall} survive] for {y} after [termination|expiry or termination] of this Agreement.",
            "The Recipient {shall} protect the Discloser's Confidential Information using at least reasonable care and {shall} not disclose it to any third party without prior written consent. Either party may be Recipient or Discloser, and this obligation continues for {y} following the end of this Agreement.",
            "{V} and {c} each undertake to hold the other's Confidential Information in strict confidence, [except for|save for] information that is public, independently developed or required to be disclosed by law, during the Term and for {y} thereafter.",
            "Neither party {shall} use or disclose the other party's Confidential Information except to perform its obligations under this Agreement. The duties in this Section {ref} apply to both parties equally and remain in force for {y} after this Agreement ends.",
        ], {
            "low": [
                "Confidentiality obligations are mutual and survive {y_r} after termination, meeting the three-year benchmark.",
                "Both parties are bound, and protection lasts {y_r} after the agreement ends, which is adequate for {c}.",
                "The duties apply equally to both parties for {y_r} post-termination, at or above the usual three years.",
            ],
            "medium": [
                "Confidentiality duties are mutual but last only {y_r} after termination, short of the three-year benchmark.",
                "Both parties are bound, yet protection ends {y_r} after the agreement, below the usual three years.",
                "The obligations are reciprocal, but {y_r} of post-termination protection is less than the three-year standard.",
            ],
        }[_risk], _conf_sampler(_dur)),
    ]
CELLS["confidentiality"]["low"].append(V("mutual_indefinite", [
    "Each party {shall} treat the other's Confidential Information as strictly confidential and {shall} not disclose it without the other's written consent. These obligations {shall} continue [indefinitely|without limit of time] for trade secrets and for so long as the information remains confidential.",
    "Both {v} and {c} {shall} protect Confidential Information received from the other with the same care they apply to their own, and this duty {shall} survive termination of this Agreement [indefinitely|for as long as the information remains non-public].",
], [
    "Mutual confidentiality obligations continue indefinitely, comfortably beyond the three-year benchmark.",
    "Both parties are bound without time limit while the information stays confidential, a strong protection for {c}.",
    "The duties are reciprocal and survive termination indefinitely, well above the usual three-year period.",
]))
CELLS["confidentiality"]["high"] = [
    V("one_sided", [
        "{C} {shall} hold in confidence all information received from {v} and {shall} not disclose it to any third party for {y} after termination. Nothing in this Agreement restricts {v}'s use or disclosure of information received from {c}.",
        "{C} acknowledges that it will receive confidential information of {v} and undertakes not to use or disclose it for {y}. {V} is under no corresponding obligation[ of confidentiality|] with respect to {c}'s information.",
        "All information relating to the {svc}, including pricing, is confidential to {v}, and {c} {shall} not disclose it during the Term or for {y} afterwards. Information [provided|supplied] by {c} is not treated as confidential.",
    ], [
        "Only {c} is bound by confidentiality; {v} may freely use and disclose {c}'s information.",
        "The obligations are one-sided, protecting {v}'s information while leaving {c}'s information unprotected.",
        "{V} owes no duty of confidentiality, so {c}'s disclosures have no protection under this clause.",
    ], nums(y=("year", [2, 3, 5]))),
    V("vendor_may_share", [
        "Each party {shall} keep the other's Confidential Information confidential for {y}, provided that {v} may disclose {c}'s Confidential Information, including customer data, to its affiliates, subcontractors and [commercial|marketing] partners without {c}'s consent.",
        "The parties {shall} keep each other's Confidential Information secret. However, {v} may share any information received from {c} with [third parties of its choosing|its business partners and advertisers] [for any purpose|for product development and marketing] without notice to or consent from {c}.",
    ], [
        "{V} may pass {c}'s confidential information to third parties without consent, undermining the protection.",
        "Although framed as mutual, the clause lets {v} share {c}'s information with third parties freely.",
        "The exception allowing {v} to disclose {c}'s data without consent makes the confidentiality promise largely empty.",
    ], nums(y=("year", [2, 3, 5]))),
]


def _law(rng, s):
    law, court = rng.choice(LAWS)
    s["law"], s["court"] = law, court
    s["seat"] = rng.choice(SEATS)
    s["rules"] = rng.choice(ARB_RULES)


CELLS["governing_law"] = {
    "low": [
        V("symmetric_courts", [
            "This Agreement [and any dispute or claim arising out of it |]{shall} be governed by [and construed in accordance with |]the laws of {law}. Each party irrevocably submits to the [exclusive|non-exclusive] jurisdiction of the courts of {court}[ in respect of any dispute arising under this Agreement| and agrees not to contest that jurisdiction|]. [The United Nations Convention on Contracts for the International Sale of Goods does not apply.|Each party waives any objection that those courts are an inconvenient forum.]",
            "[Any dispute|All disputes] arising out of or in connection with this Agreement {shall} be [resolved|determined] by the courts of {court}, to whose jurisdiction both parties submit, and this Agreement is governed by the law of {law}.",
            "The laws of {law}, [without regard to|excluding] its conflict of laws [principles|rules], govern this Agreement. {V} and {c} both consent to the [exclusive |]jurisdiction of the courts located in {court} and waive any objection to venue there.",
            "This Agreement is governed by the law of {law}. [Either party|Each of {v} and {c}] may bring proceedings [relating to|arising from] this Agreement in the courts of {court}, and both parties accept those courts' jurisdiction on equal terms.",
        ], [
            "Both parties submit to the same courts under the law of {law}, a neutral and balanced arrangement.",
            "Disputes go to the courts of {court} on equal terms for both parties, with no one-sided forum rights.",
            "The clause applies the same law and courts to both parties alike, with {court} as the forum.",
        ], _law),
    ],
    "medium": [
        V("arbitration", [
            "[Any dispute|Any controversy or claim] arising under this Agreement {shall} be finally resolved by binding arbitration seated in {seat} under the {rules}[ by a sole arbitrator|]. The award is final, and the parties waive any right to bring the dispute before a court. This Agreement is governed by the laws of {law}.",
            "The laws of {law} govern this Agreement. Disputes {shall} be referred to confidential arbitration in {seat} [administered under|in accordance with] the {rules}, with the costs of the arbitration shared equally, and neither party may commence court proceedings except to enforce an award.",
            "This Agreement is governed by the law of {law}. Neither party may sue in court; all claims, whether in contract or tort, {shall} be settled by binding arbitration under the {rules}, seated in {seat}[, in the English language|].",
        ], [
            "Disputes must go to binding arbitration in {seat}, excluding the courts, although the same route applies to both parties.",
            "Mandatory arbitration in {seat} removes access to the courts for {c}, but the procedure is symmetric.",
            "All claims go to binding arbitration rather than court, limiting {c}'s remedies though both parties are bound equally.",
        ], _law),
    ],
    "high": [
        V("asymmetric_forum", [
            "This Agreement is governed by the laws of {law}. {C} may bring proceedings only in the courts of {court}, whereas {v} may bring proceedings against {c} in any court of competent jurisdiction.",
            "The courts of {court} have exclusive jurisdiction over any claim brought by {c}. Nothing in this Section {ref} prevents {v} from [suing|taking proceedings against] {c} in any other jurisdiction[, and this Agreement is governed by the law of {law}|].",
        ], [
            "Only {v} may choose its forum, while {c} must sue exclusively in the courts of {court}.",
            "The jurisdiction clause is asymmetric: {v} can sue anywhere, but {c} is confined to {court}.",
            "{C} is limited to the courts of {court} while {v} keeps the right to sue in any jurisdiction.",
        ], _law),
        V("vendor_changes_law", [
            "This Agreement is governed by the laws of {law}, or such other jurisdiction as {v} may designate by written notice to {c} from time to time, and the courts of [that|the designated] jurisdiction {shall} have exclusive jurisdiction.",
            "{V} may, [at its discretion|by notice], change the governing law and the place of jurisdiction of this Agreement. Until such notice, the laws of {law} apply and the courts of {court} have exclusive jurisdiction.",
        ], [
            "{V} may unilaterally change the governing law by notice, leaving {c} unsure where disputes will be heard.",
            "The governing law can be switched by {v} alone, so {c} cannot rely on the law of {law}.",
            "Letting {v} designate a new governing law and forum at will creates serious uncertainty for {c}.",
        ], _law),
    ],
}


def _nc(months, worldwide):
    def sample(rng, s):
        m = rng.choice(months)
        if m % 12 == 0 and rng.random() < 0.5:
            num_slot(s, "dur", m // 12, "year")
        else:
            num_slot(s, "dur", m, "month")
        s["region"] = rng.choice(WORLDWIDE) if worldwide else "in " + rng.choice(REGIONS)
        s["region_r"] = s["region"]
        s["field"] = rng.choice(FIELDS)
    return sample


NC_TEMPLATES = [
    "{C} {shall} not, during the Term and for {dur} thereafter, [directly or indirectly|either directly or through an affiliate] develop, market or [sell|offer] any product that competes with the {svc} {region}.",
    "{C} agrees that, for {dur} after this Agreement ends, it will not engage or invest in any business that provides {field} in competition with {v} {region}.",
    "[In consideration of the fees discounted under this Agreement,|In consideration of the rights granted to it,] {c} undertakes not to carry on or be concerned in any business offering {field} {region} [during the Term and|] for a period of {dur} after termination.",
    "For {dur} following expiry or termination, {c} {shall} not [provide|supply] {field} to any third party {region}, nor solicit any customer of {v} for that purpose[, save with {v}'s written consent|].",
]
CELLS["non_compete"] = {
    "low": [V("short_local", NC_TEMPLATES, [
        "The restriction lasts {dur_r} and is confined to a limited territory, within the twelve-month benchmark.",
        "A non-compete of {dur_r}, applying only {region_r}, is modest and proportionate for {c}.",
        "{C} is restricted for only {dur_r} after the agreement and only {region_r}, an acceptable scope.",
    ], _nc([3, 6, 9, 12], False))],
    "medium": [V("mid_local", NC_TEMPLATES, [
        "The non-compete runs for {dur_r}, beyond twelve months but not over two years, within a limited territory.",
        "A restriction of {dur_r} {region_r} exceeds the twelve-month benchmark, though it stays within two years.",
        "{C} is barred for {dur_r} after termination, longer than ideal but within the two-year limit.",
    ], _nc([18, 24], False))],
    "high": [
        V("long", NC_TEMPLATES, [
            "The restriction lasts {dur_r}, exceeding the two-year limit for acceptable non-compete periods.",
            "A non-compete of {dur_r} on {c} is longer than two years and likely excessive.",
            "{C} would be barred from competing for {dur_r} after termination, well beyond the two-year benchmark.",
        ], _nc([30, 36, 48, 60], False)),
        V("worldwide", NC_TEMPLATES, [
            "The non-compete applies {region_r}, a territorial scope far broader than reasonably necessary.",
            "Although it lasts {dur_r}, the restriction covers the whole world, an excessive scope for {c}.",
            "A worldwide ban on competing activity is disproportionate, even for a period of {dur_r}.",
        ], _nc([6, 12, 18, 24, 36], True)),
    ],
}


def _pay(days, rates, interest_prob=0.8):
    def sample(rng, s):
        num_slot(s, "d", rng.choice(days), "day")
        s["dn"] = str(s["d_n"])
        p = rng.choice(rates)
        s["rate"] = rate(p, "both" if s["style"] != "digits" else "digits")
        s["rate_r"] = pct(p)
        s["cur"] = rng.choice(CURRENCIES)
        num_slot(s, "n", rng.choice([14, 30, 60]), "day")
    return sample


PAY_WITH_INTEREST = [
    "{V} {shall} invoice {c} [monthly in arrears|quarterly in advance|upon acceptance of each deliverable]. [Undisputed invoices|Invoices] are payable within {d} of [receipt|the invoice date]. Late amounts bear interest at {rate} per month[ until paid in full|].",
    "Payment terms are net {dn} days from the date of a correct invoice. [Overdue sums|Any overdue amount] {shall} accrue interest at {rate} per month or the maximum rate permitted by law, whichever is lower.",
    "{C} {shall} pay all fees in {cur} by bank transfer within {d} after receiving a valid invoice. If {c} fails to pay on time, {v} may charge interest on the overdue amount at {rate} per month[, calculated daily|].",
    "[{V} {shall} issue invoices electronically at the end of each calendar month.|Invoices {shall} quote the relevant purchase order number.] All invoices {shall} be settled [in full |]within {d} of issue[ in {cur}|]. Interest on late payments accrues at a monthly rate of {rate}[ from the due date until the date of payment|].",
]
PAY_NO_INTEREST = [
    "{C} {shall} pay all fees in {cur} [by bank transfer |]within {d} after receiving a valid invoice that meets the requirements of Section {ref}. [{C} may withhold any amount disputed in good faith pending resolution, and no interest is payable on late or disputed amounts.|No interest {shall} accrue on late payments or on amounts disputed in good faith.]",
    "Fees are invoiced [annually in advance|monthly in arrears|quarterly in arrears] and {shall} be paid within {d} of the invoice date[ to the bank account nominated by {v}|]. [No late-payment interest is chargeable under this Agreement|{V} {shall} not charge interest on late payments], and [any disputed amount {shall} be resolved by the parties' finance contacts in good faith|the parties {shall} discuss any invoice query promptly and in good faith].",
]
CELLS["payment_terms"] = {
    "low": [
        V("net_long", PAY_WITH_INTEREST, [
            "Invoices are due within {d_r} and late interest is {rate_r} per month, both within normal market terms.",
            "Payment in {d_r} meets the thirty-day benchmark, and {rate_r} monthly interest is not excessive.",
            "A payment term of {d_r} and late interest of {rate_r} per month are standard for {c}.",
        ], _pay([30, 45, 60, 90], [0.5, 1, 1.25, 1.5])),
        V("net_long_no_interest", PAY_NO_INTEREST, [
            "Invoices are payable within {d_r} with no late-payment interest, a standard net-thirty-or-longer term.",
            "A payment period of {d_r} without any late interest is favourable to {c}.",
            "{C} has {d_r} to pay and faces no interest charges, meeting the thirty-day benchmark.",
        ], _pay([30, 45, 60], [1])),
    ],
    "medium": [
        V("net_short", PAY_WITH_INTEREST, [
            "Payment is due within only {d_r}, shorter than the usual thirty-day term, though interest is moderate.",
            "A payment window of only {d_r} is below the thirty-day benchmark, tightening {c}'s cash flow.",
            "Invoices fall due in {d_r}, less than thirty days, while late interest stays at {rate_r} per month.",
        ], _pay([7, 10, 14, 15, 20], [0.5, 1, 1.25, 1.5])),
        V("net_short_no_interest", PAY_NO_INTEREST, [
            "Payment is due within only {d_r}, shorter than the usual thirty-day term.",
            "A payment window of {d_r} falls below the thirty-day benchmark, though no late interest applies.",
            "{C} must pay within {d_r}, a tight deadline compared with standard thirty-day terms.",
        ], _pay([7, 10, 14, 15], [1])),
    ],
    "high": [
        V("high_interest", PAY_WITH_INTEREST, [
            "Late payments accrue interest at {rate_r} per month, above the 1.5% monthly benchmark.",
            "The late-payment interest of {rate_r} per month is excessive compared with the 1.5% benchmark.",
            "A monthly interest rate of {rate_r} on overdue sums is punitive for {c}.",
        ], _pay([7, 14, 30, 45, 60], [2, 2.5, 3, 4, 5])),
        V("price_increase", [
            "Invoices are payable within {d} of receipt. {V} may increase the fees at any time [by any amount|without limit] by giving {c} {n}' notice, and the increased fees {shall} apply from the next invoice.",
            "{C} {shall} pay each invoice within {d}. {V} reserves the right to revise its prices [at any time|from time to time] at its sole discretion, and {c}'s continued use of the {svc} constitutes acceptance of the new prices.",
        ], [
            "{V} may raise the fees at any time by any amount, leaving {c} without cost certainty.",
            "Unilateral, uncapped price increases by {v} expose {c} to unpredictable costs.",
            "The fees can be changed at {v}'s sole discretion with no cap, a serious budget risk for {c}.",
        ], _pay([30, 45, 60], [1])),
    ],
}


def _renew(days):
    def sample(rng, s):
        num_slot(s, "d", rng.choice(days), "day")
        n = rng.choice([12, 12, 24, 36, 1])
        s["rt"] = qty(n, "year" if n == 1 else "month", s["style"])
        s["rt_r"] = rq(n, "year" if n == 1 else "month")
    return sample


RENEW_TEMPLATES = [
    "Upon expiry of the Initial Term, this Agreement {shall} [automatically renew|renew automatically] for successive periods of {rt} unless {c} gives notice of non-renewal before the renewal date. {V} {shall} remind {c} in writing of each upcoming renewal at least {d} before the renewal date.",
    "This Agreement {shall} renew automatically for further terms of {rt}. Not less than {d} before each renewal, {v} must send {c} a written renewal notice stating the renewal fees, and {c} may opt out at any time up to the renewal date.",
    "The subscription renews automatically at the end of each term for an additional {rt}. {C} may cancel the renewal by written notice at any time before the renewal date; {v} {shall} give {c} at least {d}' advance written notice of each upcoming renewal[ and any change in fees|].",
    "[Unless terminated earlier,|] this Agreement continues for successive renewal periods of {rt}. {V} {shall} notify {c} of the forthcoming renewal no later than {d} before it takes effect, and {c} may decline the renewal by written notice given before the renewal date.",
]
CELLS["auto_renewal"] = {
    "low": [V("reminder_long", RENEW_TEMPLATES, [
        "{V} must send a renewal reminder {d_r} ahead, giving {c} an opt-out window of at least sixty days.",
        "Advance renewal notice of {d_r} leaves {c} ample time to opt out, meeting the sixty-day benchmark.",
        "{C} is reminded {d_r} before each renewal and may cancel until the renewal date, a fair arrangement.",
    ], _renew([60, 75, 90, 120]))],
    "medium": [V("reminder_mid", RENEW_TEMPLATES, [
        "The renewal reminder comes {d_r} before renewal, an opt-out window below sixty days but not under thirty.",
        "{C} gets {d_r}' notice of renewal, enough to act but short of the sixty-day benchmark.",
        "A reminder {d_r} ahead gives {c} a workable but tight window to opt out of the automatic renewal.",
    ], _renew([30, 40, 45, 50]))],
    "high": [
        V("reminder_short", RENEW_TEMPLATES, [
            "Renewal notice comes only {d_r} in advance, leaving {c} less than thirty days to opt out.",
            "A renewal reminder only {d_r} ahead is too short for {c} to review and cancel before the agreement renews.",
            "With just {d_r}' warning, {c} risks being locked into a further renewal period of {rt_r}.",
        ], _renew([5, 7, 10, 14, 15, 21])),
        V("no_reminder", [
            "This Agreement renews automatically for successive periods of {rt} unless {c} gives written notice of non-renewal at least {d} before the end of the then-current term. {V} has no obligation to notify {c} of any upcoming renewal.",
            "At the end of each term the {svc} subscription [automatically renews|rolls over] for a further {rt}. To prevent renewal, {c} must give notice at least {d} before expiry; [no reminder will be sent|{v} will not send a reminder].",
        ], [
            "The agreement renews silently with no reminder from {v}, so {c} may miss the cancellation deadline.",
            "{V} need not warn {c} before renewal, making an unwanted renewal for another {rt_r} likely.",
            "Without any renewal reminder, {c} must track the {d_r} cancellation deadline alone or be locked in.",
        ], _renew([30, 60, 90])),
    ],
}

CELLS["assignment"] = {
    "low": [
        V("mutual_consent", [
            "Neither party may assign, transfer[, charge| or otherwise deal with| or subcontract] any of its rights or obligations under this Agreement without the prior written consent of the other party[, such consent not to be unreasonably withheld or delayed|]. [Any purported assignment in breach of this Section {ref} is void.|This Agreement binds and benefits each party's permitted successors and assigns.|Each party remains responsible for the acts of any permitted subcontractor.]",
            "[Neither {v} nor {c}|Neither party] {shall} assign this Agreement except with the other's written consent, provided that either party may assign it without consent to a successor in a merger or sale of substantially all of its assets, upon written notice to the other party.",
            "This Agreement is personal to the parties. Any assignment or transfer by either party requires the prior written approval of the other, and any attempted assignment in breach of this Section {ref} {shall} be void.",
        ], [
            "Neither party may assign without the other's consent, so the restriction binds both sides equally.",
            "Assignment requires mutual written consent, protecting {c} from an unknown counterparty.",
            "The assignment restrictions are reciprocal, and {v} cannot transfer the contract without {c}'s approval.",
        ]),
    ],
    "medium": [
        V("vendor_affiliate_notice", [
            "{C} may not assign this Agreement without {v}'s prior written consent. {V} may assign this Agreement to an affiliate or to a successor to its business without {c}'s consent, provided it gives {c} written notice within {d} of the assignment.",
            "{V} may transfer its rights and obligations under this Agreement to any of its affiliates upon [prior |]written notice to {c}. Any assignment by {c} requires {v}'s written consent.",
            "Assignment by {c} requires the written consent of {v}. {V} may, on written notice, assign this Agreement [to a group company|to an affiliate] or in connection with a sale of its business[, but not otherwise|].",
        ], [
            "{V} may assign to affiliates without consent, though only on notice to {c}, which needs consent itself.",
            "The clause lets {v} transfer the contract within its group on notice only, an imbalance favouring {v}.",
            "{C} needs consent to assign while {v} may assign to affiliates on notice, a limited one-sided right.",
        ], nums(d=("day", [10, 14, 30]))),
    ],
    "high": [
        V("vendor_any_party", [
            "{V} may assign, novate or subcontract any or all of its rights and obligations under this Agreement to any third party at any time without {c}'s consent [or notice|and without notice to {c}]. {C} {shall} not assign this Agreement without {v}'s prior written consent.",
            "{C} may not transfer this Agreement. {V} may freely assign this Agreement[, in whole or in part,|] to any person of its choosing without notice to or consent from {c}.",
            "{V} {shall} be entitled to transfer this Agreement or subcontract the {svc} to any third party without {c}'s approval and without notifying {c}. {C}'s rights under this Agreement are personal and non-transferable.",
        ], [
            "{V} may transfer the contract to any third party without consent or notice, while {c} cannot assign.",
            "Unrestricted assignment by {v}, without even notice, could leave {c} dealing with an unknown provider.",
            "The assignment right is wholly one-sided: {v} can assign to anyone silently, {c} not at all.",
        ]),
    ],
}

CELLS["intellectual_property"] = {
    "low": [
        V("customer_owns", [
            "All deliverables created by {v} specifically for {c} under this Agreement, and all intellectual property rights in them, {shall} vest in {c} [upon payment of the applicable fees|on creation]. {V} retains ownership of its pre-existing materials and grants {c} a perpetual, royalty-free licence to use them as part of the deliverables.",
            "{C} retains all rights in its data and materials. {V} hereby assigns to {c} all right, title and interest in the work product developed under each Statement of Work, effective upon payment in full.",
            "Intellectual property rights in the bespoke deliverables {shall} belong to {c}[ from the date of creation|]. {V} {shall} execute any documents reasonably required to perfect {c}'s ownership, and {c}'s data {shall} remain the property of {c} at all times.",
        ], [
            "{C} owns the deliverables created for it and keeps its own data, a customer-favourable allocation.",
            "Ownership of the bespoke work product passes to {c}, while {v} keeps only its pre-existing materials.",
            "All rights in the deliverables vest in {c}, so {c} can use and modify them freely.",
        ]),
    ],
    "medium": [
        V("vendor_owns_perpetual_licence", [
            "{V} retains all intellectual property rights in the deliverables[ and any software developed under this Agreement|]. {V} grants {c} a non-exclusive, perpetual, irrevocable, royalty-free licence to use the deliverables for its internal business purposes. {C} retains ownership of its own data.",
            "Ownership of all work product remains with {v}; however, {c} receives a perpetual and irrevocable licence[, free of further charge,|] to use, copy and modify the work product within its organisation.",
            "All rights in the deliverables belong to {v}. In return for the fees, {c} is granted a [worldwide, |]royalty-free licence to use the deliverables that is perpetual and cannot be revoked[, including after termination|].",
        ], [
            "{V} keeps ownership of the deliverables, but {c} receives a perpetual, irrevocable, royalty-free licence to use them.",
            "{C} does not own the work product, though its perpetual irrevocable licence secures continued use.",
            "Ownership stays with {v}, a compromise softened by a permanent, royalty-free licence in {c}'s favour.",
        ]),
    ],
    "high": [
        V("vendor_takes_customer_rights", [
            "All intellectual property rights in the deliverables, and in any data, feedback or materials provided by {c}, {shall} vest in {v}, and {c} hereby assigns to {v} all such rights.",
            "{C} hereby assigns to {v} all rights in any [data|content|materials] it uploads to the {svc}[, together with any improvements suggested by {c}|], and {v} may use them for any purpose without compensation.",
        ], [
            "{C} must assign to {v} rights in its own data and materials, not just the deliverables.",
            "The clause transfers {c}'s own data and materials to {v}, a serious loss of ownership.",
            "{V} acquires rights in everything {c} provides, including its data, with no compensation.",
        ]),
        V("revocable_licence", [
            "{V} owns all deliverables[ produced under this Agreement|]. {C} is granted a non-exclusive licence to use them during the Term only, which {v} may revoke at any time [on notice|without cause].",
            "All rights in the work product remain with {v}. {C} may use the work product [under a revocable licence|under a licence that {v} may withdraw at will] that ends automatically on termination of this Agreement.",
        ], [
            "{C} gets only a revocable licence to deliverables it paid for, ending at {v}'s discretion or at termination.",
            "{V} owns the work product and may withdraw {c}'s licence, so {c} could lose access to paid deliverables.",
            "The licence to the deliverables is revocable and term-limited, leaving {c} without secure rights.",
        ]),
    ],
}

# --------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------

CHOICE_RE = re.compile(r"\[([^\[\]]*)\]")


def resolve_choices(rng: random.Random, text: str) -> str:
    return CHOICE_RE.sub(lambda m: rng.choice(m.group(1).split("|")), text)


def n_words(s: str) -> int:
    return len(s.split())


def normalize(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()


_SPACE = re.compile(r"\s+")


def shingles(text: str, k: int = SHINGLE) -> frozenset[str]:
    """The check's shingles: k-character substrings of the whitespace-collapsed, case-folded text."""
    text = _SPACE.sub(" ", text).strip().casefold()
    if len(text) <= k:
        return frozenset({text})
    return frozenset(text[i:i + k] for i in range(len(text) - k + 1))


def near_any(s: frozenset[str], others: list[frozenset[str]], threshold: float = NEAR) -> bool:
    """Whether s has Jaccard similarity >= threshold with any of others."""
    for o in others:
        small, large = (len(s), len(o)) if len(s) <= len(o) else (len(o), len(s))
        if small < threshold * large:  # Jaccard <= small / large
            continue
        inter = len(s & o)
        if inter >= threshold * (len(s) + len(o) - inter):
            return True
    return False


def base_slots(rng: random.Random) -> dict:
    vendor, customer = rng.choice(ROLES)
    art = rng.random() < 0.8
    s = {
        "v": f"the {vendor}" if art else vendor, "V": f"The {vendor}" if art else vendor,
        "c": f"the {customer}" if art else customer, "C": f"The {customer}" if art else customer,
        "vendor": vendor, "customer": customer, "art": art,
        "svc": rng.choice(SERVICES),
        "style": rng.choices(["both", "digits", "words"], weights=[45, 40, 15])[0],
        "shall": rng.choices(["shall", "will"], weights=[80, 20])[0],
        "ref": f"{rng.randint(2, 24)}.{rng.randint(1, 9)}",
        "ref2": f"{rng.randint(2, 24)}.{rng.randint(1, 9)}",
    }
    return s


def introduce(rng: random.Random, text: str, role: str, name: str, art: bool) -> str:
    """Replace the first plain mention of a role ("the Supplier", not "the Supplier's") by its definition."""
    pat = re.compile(r"\b([Tt]he )?" + re.escape(role) + r"\b(?!')")
    m = pat.search(text)
    if not m:
        return text
    if art and not m.group(1):
        return text
    definition = f'{name} (the "{role}")' if art else f'{name} ("{role}")'
    return text[:m.start()] + definition + text[m.end():]


def heading_for(rng: random.Random, ctype: str) -> str | None:
    kind = rng.choices(["right", "generic", "misleading", "none"], weights=[48, 12, 10, 30])[0]
    if kind == "right":
        return rng.choice(HEADINGS[ctype])
    if kind == "generic":
        return rng.choice(GENERIC_HEADINGS)
    if kind == "misleading":
        return rng.choice(HEADINGS[rng.choice(MISLEADING[ctype])])
    return None


def frame(rng: random.Random, body: str, heading: str | None) -> str:
    a, b = rng.randint(2, 24), rng.randint(1, 9)
    num = rng.choice([f"{a}.{b}", f"{a}.{b}", f"{a}.{b}.{rng.randint(1, 5)}", f"{a}({'abcdef'[b % 6]})", f"{a}."])
    if heading is None:
        form = rng.choice(["{body}", "{body}", "{num} {body}", "Clause {num2} {body}", "({letter}) {body}"])
    else:
        form = rng.choice([
            "{num} {heading}. {body}", "{num} {heading}. {body}", "{num} {heading}: {body}", "{HEADING}. {body}",
            "Section {num2} - {heading}. {body}", "Clause {num2} ({heading}). {body}", "{heading}. {body}",
            "{num2}. {HEADING}\n{body}", "{heading}\n{body}",
        ])
    return form.format(body=body, num=num, num2=f"{a}.{b}" if rng.random() < 0.6 else str(a),
                       letter="abcdefgh"[b % 8], heading=heading, HEADING=(heading or "").upper())


def tidy(text: str) -> str:
    text = re.sub(r"[ \t]+", " ", text).strip()
    text = re.sub(r" ([.,;:])", r"\1", text)
    text = re.sub(r"\.\.", ".", text)
    # capitalise the first letter of each sentence (choices may start one with a lower-case slot)
    text = re.sub(r"(^|\.\s+|\n)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)
    return text.strip()


def make_example(rng: random.Random, ctype: str, risk: str, variant: dict):
    s = base_slots(rng)
    variant["numbers"](rng, s)
    tmpl = rng.choice(variant["templates"])
    body = resolve_choices(rng, tmpl).format_map(s)
    body = tidy(body)
    if rng.random() < 0.3:
        body = introduce(rng, body, s["vendor"], rng.choice(VENDOR_NAMES), s["art"])
    if rng.random() < 0.2:
        body = introduce(rng, body, s["customer"], rng.choice(CUSTOMER_NAMES), s["art"])
    clause = frame(rng, body, heading_for(rng, ctype))
    # a reason names a party by its role only if the clause does; otherwise "the customer" / "the vendor"
    rs = dict(s)
    if not re.search(r"\b" + re.escape(s["vendor"]) + r"\b", clause):
        rs.update(v="the vendor", V="The vendor")
    if not re.search(r"\b" + re.escape(s["customer"]) + r"\b", clause):
        rs.update(c="the customer", C="The customer")
    reason = tidy(rng.choice(variant["reasons"]).format_map(rs))
    reason = reason[0].upper() + reason[1:]
    return clause, reason


def answer(ctype: str, risk: str, reason: str) -> str:
    return json.dumps({"clause_type": ctype, "risk": risk, "reason": reason}, ensure_ascii=False)


def split_counts(rng: random.Random) -> dict:
    """Per split, per (type, risk) counts: types exactly balanced, risks as even as possible within a type."""
    counts = {}
    for split, n in SPLITS:
        per_type = n // len(CLAUSE_TYPES)
        assert per_type * len(CLAUSE_TYPES) == n
        counts[split] = {}
        # spread each type's remainder over risks so that, summed over types, risks are balanced too
        base, rem = divmod(per_type, len(RISKS))
        extras = []
        for i in range(len(CLAUSE_TYPES) * rem):
            extras.append(RISKS[i % len(RISKS)])
        rng.shuffle(extras)
        for ti, ctype in enumerate(CLAUSE_TYPES):
            mine = extras[ti * rem:(ti + 1) * rem]
            # avoid giving one type two extras of the same risk
            while len(set(mine)) < len(mine):
                rng.shuffle(extras)
                mine = extras[ti * rem:(ti + 1) * rem]
            for risk in RISKS:
                counts[split][(ctype, risk)] = base + mine.count(risk)
    return counts


def build(seed: int):
    rng = random.Random(seed)
    counts = split_counts(rng)
    # per cell: which split each row goes to, and its (variant, template) pair
    plan = {}
    for ctype in CLAUSE_TYPES:
        for risk in RISKS:
            need = sum(counts[s][(ctype, risk)] for s, _ in SPLITS)
            variants = CELLS[ctype][risk]
            # every (variant, template) pair used evenly, in shuffled blocks
            pairs = [(vi, ti) for vi, v in enumerate(variants) for ti in range(len(v["templates"]))]
            order = []
            while len(order) < need:
                block = pairs[:]
                rng.shuffle(block)
                order.extend(block)
            labels = [s for s, _ in SPLITS for _ in range(counts[s][(ctype, risk)])]
            rng.shuffle(labels)
            plan[(ctype, risk)] = list(zip(labels, order[:need]))
    seen = set()
    convs = {s: [] for s, _ in SPLITS}  # shingles of each accepted row's conversation text, per split
    prompts = {s: [] for s, _ in SPLITS}  # ... and of its prompt
    out = {}
    # splits one after another, so that an eval or test row is drawn against all of train (and test against eval)
    for si, (split, _) in enumerate(SPLITS):
        earlier = [s for s, _ in SPLITS[:si]]
        rows = []
        for (ctype, risk), slots in plan.items():
            variants = CELLS[ctype][risk]
            for label, (vi, ti) in slots:
                if label != split:
                    continue
                # the planned (variant, template) pair first; if its wording cannot give a row far enough from
                # the rows drawn so far, the cell's other pairs in turn
                others = [(a, t) for a, v in enumerate(variants) for t in range(len(v["templates"])) if (a, t) != (vi, ti)]
                rng.shuffle(others)
                tries = [(vi, ti)] + others
                for attempt in range(ATTEMPTS * len(tries)):
                    ai, at = tries[attempt // ATTEMPTS]
                    variant = dict(variants[ai], templates=[variants[ai]["templates"][at]])
                    clause, reason = make_example(rng, ctype, risk, variant)
                    key = normalize(clause)
                    if not (CLAUSE_WORDS[0] <= n_words(clause) <= CLAUSE_WORDS[1]
                            and REASON_WORDS[0] <= n_words(reason) <= REASON_WORDS[1]
                            and key not in seen):
                        continue
                    record = to_record(ctype, risk, clause, reason)
                    conv = shingles(conversation_text(record))
                    prompt = shingles(prompt_text(record))
                    if near_any(conv, convs[split]) or any(near_any(prompt, prompts[s]) for s in earlier):
                        continue
                    seen.add(key)
                    convs[split].append(conv)
                    prompts[split].append(prompt)
                    rows.append((ctype, risk, clause, reason))
                    break
                else:
                    raise RuntimeError(f"could not fill a {split} row of {ctype}/{risk}")
        rng.shuffle(rows)
        out[split] = rows
    return out


def to_record(ctype: str, risk: str, clause: str, reason: str) -> dict:
    return {"messages": [
        {"role": "user", "content": clause},
        {"role": "assistant", "content": answer(ctype, risk, reason)},
    ]}


def conversation_text(record: dict) -> str:
    """What `tunesmith check` compares for near-duplicates: every turn as "role: content", one per line."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in record["messages"])


def prompt_text(record: dict) -> str:
    """What it compares for leakage: the turns before the last assistant turn."""
    last = max(i for i, m in enumerate(record["messages"]) if m["role"] == "assistant")
    return "\n".join(f"{m['role']}: {m['content']}" for m in record["messages"][:last])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args()

    data = build(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    all_clauses = [normalize(c) for rows in data.values() for _, _, c, _ in rows]
    assert len(all_clauses) == len(set(all_clauses)), "duplicate clause text"
    for split, rows in data.items():
        with open(args.out / f"{split}.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for ctype, risk, clause, reason in rows:
                f.write(json.dumps(to_record(ctype, risk, clause, reason), ensure_ascii=False) + "\n")

    width = max(len(t) for t in CLAUSE_TYPES)
    print(f"wrote {', '.join(f'{s}.jsonl' for s, _ in SPLITS)} to {args.out} (seed={args.seed})")
    print(f"{'clause_type':<{width}}  " + "  ".join(f"{s + ' l/m/h':>16}" for s, _ in SPLITS))
    for ctype in CLAUSE_TYPES:
        cells = []
        for s, _ in SPLITS:
            c = Counter(r for t, r, _, _ in data[s] if t == ctype)
            cells.append(f"{c['low']}/{c['medium']}/{c['high']}")
        print(f"{ctype:<{width}}  " + "  ".join(f"{x:>16}" for x in cells))
    tot = []
    for s, _ in SPLITS:
        c = Counter(r for _, r, _, _ in data[s])
        tot.append(f"{c['low']}/{c['medium']}/{c['high']}")
    print(f"{'total':<{width}}  " + "  ".join(f"{x:>16}" for x in tot))


if __name__ == "__main__":
    main()
