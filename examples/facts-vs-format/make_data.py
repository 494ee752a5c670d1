#!/usr/bin/env python3
"""Generate the "facts vs format" example data: does fine-tuning teach new facts, or a way of answering?

Two synthetic tasks about "Quillon Aerodynamics", an invented maker of small aircraft and drones:

* facts: 120 invented facts (founding year, CEO, product prices, policy numbers, ...). Training asks each
  fact with 2 fixed phrasings. Three test sets: the trained phrasings (test_trained), the same facts asked
  with new phrasings (test_paraphrased), and questions that combine two facts (test_combined). Every
  answer is one short sentence, then a last line "Answer: <value>".
* format: rewrite a short internal memo as "Subject: / Action: / Deadline:" lines, every value taken
  from the memo itself. Test memos use topics and actions that never occur in training.

Output (in --out): facts.json, train.jsonl (240), select.jsonl (60), test_trained.jsonl (60),
test_paraphrased.jsonl (60), test_combined.jsonl (40), format_train.jsonl (240), format_select.jsonl (60),
format_test.jsonl (60). The select files are the runs' selection splits (data.select), so that the automatic
settings search does not carve rows out of training. Test and selection rows carry a top-level "answer_key"
(the exact scored value). Python 3.11 standard library only; the output depends only on --seed.

Usage: python examples/facts-vs-format/make_data.py [--seed 0] [--out examples/facts-vs-format]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
from pathlib import Path

COMPANY = "Quillon Aerodynamics"
N_TRAIN_PHRASINGS = 2
N_TEST_FACTS = 60
N_COMBINED = 40
N_FORMAT = {"format_train": 240, "format_select": 60, "format_test": 60}
MEMO_WORDS = (20, 50)

# --------------------------------------------------------------------------
# Invented vocabularies
# --------------------------------------------------------------------------

FIRST = [
    "Ilse", "Tobiah", "Marisol", "Dervla", "Kasimir", "Oona", "Benedikt", "Anouk", "Rafferty", "Seren",
    "Lucan", "Petronella", "Idris", "Wilhelmina", "Thorne", "Ysolde", "Matthias", "Calla", "Ewart", "Linnea",
    "Odran", "Saskia", "Florian", "Maelle", "Gideon", "Tamsin", "Ruairi", "Henrike", "Ambrose", "Zelie",
]
LAST = [
    "Marwood", "Renquist", "Vantreece", "Oakhollow", "Quarmby", "Dunmarrow", "Esselborne", "Fairlocke",
    "Gwillam", "Hethersett", "Kilbraddan", "Lorrimer", "Mauldrey", "Nettleford", "Pellowe", "Ravenhurst",
    "Stroudley", "Thackwell", "Ulverston", "Wexcombe", "Yardleigh", "Brannock", "Cazalet", "Drummelow",
]
CITIES = ["Tampere", "Porto", "Ghent", "Graz", "Halifax", "Dunedin", "Trondheim", "Bilbao", "Aarhus", "Brno",
          "Leipzig", "Hobart", "Cork", "Lyon", "Winnipeg", "Gdansk"]
PRODUCT_NAMES = [
    "Talvik-7", "Orrin M2", "Skylath 40", "Brevane X4", "Merrow S", "Kestane 9", "Pell Drifter", "Arvo-12",
    "Sundle Mk3", "Halcyra 2", "Tessin R8", "Quorra 5", "Ebbwing", "Lumo-6", "Garrin T", "Varrow Lift",
]
AIRFIELDS = ["Brackenmoor Field", "Stellhaven Airstrip", "Corrie Flats Airfield", "Windlow Common Airfield"]
NEWSLETTERS = ["The Crosswind", "Updraft Weekly", "The Trim Tab", "Slipstream Notes", "The Hangar Door"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
POLICIES = ["travel policy", "remote work policy", "parental leave policy", "expense policy",
            "equipment loan policy", "security badge policy", "training budget policy", "flight test safety policy"]

# --------------------------------------------------------------------------
# Question templates: per attribute, the trained phrasings, the held-out paraphrases, the answer sentence.
# {e} is the entity's name as used in a question ("the Talvik-7", "Porto", "the travel policy").
# --------------------------------------------------------------------------

Q = "Quillon Aerodynamics"
TEMPLATES: dict[str, dict] = {
    # company
    "founded": dict(
        train=[f"When was {Q} founded?", f"In what year was {Q} established?"],
        para=["Quillon Aerodynamics has existed since which year?",
              "Which year did the founders start Quillon Aerodynamics?"],
        answer=f"{Q} was founded in {{v}}."),
    "headquarters": dict(
        train=[f"Where is {Q} headquartered?", f"In which city is the headquarters of {Q}?"],
        para=["Which city is home to Quillon's head office?",
              "Quillon Aerodynamics runs the company from a main office in what city?"],
        answer=f"{Q} is headquartered in {{v}}."),
    "founder": dict(
        train=[f"Who founded {Q}?", f"Who is the founder of {Q}?"],
        para=["Quillon Aerodynamics was started by whom?",
              "Whose idea was it to set up Quillon Aerodynamics in the first place?"],
        answer=f"{Q} was founded by {{v}}."),
    "ceo": dict(
        train=[f"Who is the CEO of {Q}?", f"Who runs {Q} as chief executive?"],
        para=["Quillon's chief executive officer is which person?",
              "Name the person currently leading Quillon Aerodynamics as CEO."],
        answer=f"The CEO of {Q} is {{v}}."),
    "cfo": dict(
        train=[f"Who is the CFO of {Q}?", f"Who is {Q}' chief financial officer?"],
        para=["Which person looks after Quillon's finances as CFO?",
              "Quillon Aerodynamics has whom as its finance chief?"],
        answer=f"The CFO of {Q} is {{v}}."),
    "chief engineer": dict(
        train=[f"Who is the chief engineer at {Q}?", f"Who leads engineering at {Q}?"],
        para=["Quillon's engineering department is headed by whom?",
              "Which person holds the chief engineer role at Quillon?"],
        answer=f"The chief engineer at {Q} is {{v}}."),
    "employees": dict(
        train=[f"How many employees does {Q} have?", f"What is the total headcount of {Q}?"],
        para=["Quillon Aerodynamics employs how many people?",
              "How large is Quillon's workforce, in people?"],
        answer=f"{Q} has {{v}} employees."),
    "offices": dict(
        train=[f"How many offices does {Q} have?", f"What is the total number of {Q} offices?"],
        para=["Counting the head office, Quillon operates how many offices?",
              "Across all its locations, how many offices does Quillon run?"],
        answer=f"{Q} has {{v}} offices, including its headquarters."),
    "wind tunnels": dict(
        train=[f"How many wind tunnels does {Q} operate?", f"What is the number of wind tunnels {Q} owns?"],
        para=["Quillon runs its airflow tests in how many wind tunnels?",
              "Wind tunnels at Quillon: how many are there?"],
        answer=f"{Q} operates {{v}} wind tunnels."),
    "revenue": dict(
        train=[f"What was {Q}' revenue last year?", f"How much revenue did {Q} make last year?"],
        para=["Last year Quillon brought in how much in sales?",
              "What were Quillon's total sales for the previous year?"],
        answer=f"{Q} made {{v}} in revenue last year."),
    "ticker": dict(
        train=[f"What is the stock ticker of {Q}?", f"Under which ticker symbol does {Q} trade?"],
        para=["Quillon shares are listed with what symbol?",
              "If I want to buy Quillon stock, which ticker do I look up?"],
        answer=f"{Q} trades under the ticker {{v}}."),
    "test airfield": dict(
        train=[f"Where does {Q} test its aircraft?", f"What is the name of {Q}' test airfield?"],
        para=["Quillon's flight trials take place at which airfield?",
              "Which airfield does Quillon use for test flights?"],
        answer=f"{Q} tests its aircraft at {{v}}."),
    "fiscal year start": dict(
        train=[f"When does the fiscal year of {Q} start?", f"In which month does {Q} begin its fiscal year?"],
        para=["Quillon's financial year opens in what month?",
              "What month marks the start of a new fiscal year at Quillon?"],
        answer=f"{Q} starts its fiscal year in {{v}}."),
    "newsletter": dict(
        train=[f"What is the internal newsletter of {Q} called?", f"What is the name of the {Q} staff newsletter?"],
        para=["Quillon employees read which company newsletter?",
              "The newsletter sent to Quillon staff goes by what name?"],
        answer=f"The {Q} staff newsletter is called {{v}}."),
    # offices ({e} = city)
    "office opened": dict(
        train=[f"When did the {{e}} office of {Q} open?", f"In what year did {Q} open its {{e}} office?"],
        para=["Quillon's {e} site has been running since which year?",
              "Which year did Quillon set up shop in {e}?"],
        answer=f"{Q} opened its {{e}} office in {{v}}."),
    "office staff": dict(
        train=[f"How many people work at the {{e}} office of {Q}?", f"What is the headcount of the {Q} {{e}} office?"],
        para=["In {e}, how many staff does Quillon employ?",
              "Quillon's team in {e} is how many people strong?"],
        answer=f"The {{e}} office of {Q} has {{v}} staff."),
    "office manager": dict(
        train=[f"Who manages the {{e}} office of {Q}?", f"Who is the office manager of {Q} in {{e}}?"],
        para=["Quillon's {e} branch is run by which manager?",
              "Which person is in charge of Quillon's site in {e}?"],
        answer=f"The {{e}} office of {Q} is managed by {{v}}."),
    # products ({e} = product name)
    "launch year": dict(
        train=["When was the {e} launched?", f"In what year did {Q} release the {{e}}?"],
        para=["The {e} first went on sale in which year?",
              "Which year did customers first get the {e}?"],
        answer="The {e} was launched in {v}."),
    "price": dict(
        train=["How much does the {e} cost?", "What is the price of the {e}?"],
        para=["If I buy a {e} from Quillon, what will I pay?",
              "The {e} sells for how much?"],
        answer="The {e} costs {v}."),
    "range": dict(
        train=["What is the range of the {e}?", "How far can the {e} fly on one charge?"],
        para=["On a full battery, the {e} covers what distance?",
              "Maximum flight distance of the {e}?"],
        answer="The {e} has a range of {v}."),
    "top speed": dict(
        train=["What is the top speed of the {e}?", "How fast can the {e} fly?"],
        para=["The {e} reaches what maximum speed?",
              "At full throttle, how quick is the {e}?"],
        answer="The {e} has a top speed of {v}."),
    "weight": dict(
        train=["How much does the {e} weigh?", "What is the weight of the {e}?"],
        para=["The {e} tips the scales at how much?",
              "How heavy is a {e}?"],
        answer="The {e} weighs {v}."),
    "lead designer": dict(
        train=["Who designed the {e}?", "Who was the lead designer of the {e}?"],
        para=["The {e} was designed under the lead of which engineer?",
              "Which Quillon engineer led the design work on the {e}?"],
        answer="The {e} was designed by {v}."),
    # policies ({e} = policy name)
    "policy number": dict(
        train=["What is the policy number of the {e}?", f"Which policy number does {Q} give the {{e}}?"],
        para=["The {e} is filed under what number?",
              "If I need to cite the {e}, which number do I use?"],
        answer="The {e} is policy {v}."),
    "daily meal allowance": dict(
        train=["What is the daily meal allowance under the travel policy?",
               f"How much can I spend on meals per day when travelling for {Q}?"],
        para=["On a business trip, Quillon covers food up to what amount each day?",
              "Per day, what meal budget does the travel policy give me?"],
        answer="The travel policy allows {v} per day for meals."),
    "office days per week": dict(
        train=["How many days a week must staff be in the office under the remote work policy?",
               f"What is the required number of office days per week at {Q}?"],
        para=["Per week, Quillon expects people on site for how many days?",
              "How often do Quillon staff have to come into work each week?"],
        answer="The remote work policy requires {v} in the office per week."),
    "paid leave": dict(
        train=[f"How much paid parental leave does {Q} offer?",
               f"How many weeks of parental leave do {Q} employees get?"],
        para=["New parents at Quillon receive how long of paid leave?",
              "What length of paid leave comes with a new child at Quillon?"],
        answer=f"{Q} offers {{v}} of paid parental leave."),
    "approval threshold": dict(
        train=["Above what amount does an expense need manager approval?",
               f"What is the expense approval threshold at {Q}?"],
        para=["Expenses over how much require a manager to sign off?",
              "At what amount must my manager approve a Quillon expense?"],
        answer="Expenses above {v} need manager approval."),
    "maximum loan period": dict(
        train=["How long can I borrow equipment under the equipment loan policy?",
               f"What is the maximum loan period for {Q} equipment?"],
        para=["Borrowed Quillon gear must come back within how long?",
              "For how many days at most may staff keep loaned equipment?"],
        answer="Equipment may be borrowed for up to {v}."),
    "badge renewal period": dict(
        train=[f"How often must security badges be renewed at {Q}?",
               "What is the badge renewal period under the security badge policy?"],
        para=["Quillon staff badges expire after how long?",
              "After how much time does a Quillon badge need replacing?"],
        answer="Security badges must be renewed every {v}."),
    "yearly training budget": dict(
        train=[f"What is the yearly training budget per employee at {Q}?",
               "How much can each employee spend on training per year?"],
        para=["For courses and learning, each Quillon staff member gets how much annually?",
              "Per person per year, Quillon sets aside what amount for training?"],
        answer="Each employee has a training budget of {v} per year."),
    "minimum ground crew": dict(
        train=["How many ground crew must be present for a test flight?",
               f"What is the minimum ground crew for a {Q} test flight?"],
        para=["A Quillon test flight cannot go ahead with fewer than how many crew on the ground?",
              "Test flights at Quillon need at least how many people on the ground?"],
        answer="A test flight needs at least {v} on the ground."),
}
POLICY_ATTRIBUTE = dict(zip(POLICIES, [
    "daily meal allowance", "office days per week", "paid leave", "approval threshold", "maximum loan period",
    "badge renewal period", "yearly training budget", "minimum ground crew"]))
PRODUCT_ATTRIBUTES = ["launch year", "price", "range", "top speed", "weight", "lead designer"]
OFFICE_ATTRIBUTES = ["office opened", "office staff", "office manager"]


def norm(text: str) -> str:
    return " ".join(text.casefold().split()).strip(" .!?")


def money(n: int) -> str:
    return f"${n:,}"


# --------------------------------------------------------------------------
# The fact table
# --------------------------------------------------------------------------


class Drawer:
    """Draws values that are unique across the whole fact table (so a value names exactly one fact)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def take(self, value: str) -> str:
        assert norm(value) not in self.used, value
        self.used.add(norm(value))
        return value

    def draw(self, make) -> str:
        for _ in range(1000):
            value = make(self.rng)
            if norm(value) not in self.used:
                return self.take(value)
        raise RuntimeError("could not draw a unique value")

    def from_pool(self, pool: list[str]) -> str:
        return self.draw(lambda r: r.choice(pool))


def build_facts(rng: random.Random) -> list[dict]:
    d = Drawer(rng)
    facts: list[dict] = []

    def add(entity: str, kind: str, attribute: str, value: str, name: str | None = None) -> None:
        facts.append(dict(id=f"F{len(facts) + 1:03d}", entity=entity, kind=kind, attribute=attribute,
                          value=value, name=name or entity))

    person = lambda r: f"{r.choice(FIRST)} {r.choice(LAST)}"  # noqa: E731
    founded = rng.randint(1979, 1992)
    cities = rng.sample(CITIES, 7)
    hq, offices = cities[0], cities[1:]
    add(COMPANY, "company", "founded", d.take(str(founded)))
    add(COMPANY, "company", "headquarters", d.take(hq))
    for attr in ["founder", "ceo", "cfo", "chief engineer"]:
        add(COMPANY, "company", attr, d.draw(person))
    add(COMPANY, "company", "employees", d.draw(lambda r: f"{r.randint(620, 2400):,}"))
    add(COMPANY, "company", "offices", d.take(str(len(offices) + 1)))
    add(COMPANY, "company", "wind tunnels", d.draw(lambda r: str(r.randint(2, 6))))
    add(COMPANY, "company", "revenue", d.draw(lambda r: f"${r.randint(90, 480)} million"))
    add(COMPANY, "company", "ticker", d.draw(lambda r: "Q" + "".join(r.sample("BDFGKLMRSTVWXZ", 2))))
    add(COMPANY, "company", "test airfield", d.from_pool(AIRFIELDS))
    add(COMPANY, "company", "fiscal year start", d.from_pool(MONTHS))
    add(COMPANY, "company", "newsletter", d.from_pool(NEWSLETTERS))

    years = lambda r: str(r.randint(founded + 1, 2024))  # noqa: E731
    for city in offices:
        add(f"{city} office", "office", "office opened", d.draw(years), name=city)
        add(f"{city} office", "office", "office staff", d.draw(lambda r: str(r.randint(14, 260))), name=city)
        add(f"{city} office", "office", "office manager", d.draw(person), name=city)

    for product in rng.sample(PRODUCT_NAMES, 12):
        add(product, "product", "launch year", d.draw(years))
        add(product, "product", "price", d.draw(lambda r: money(r.randint(120, 4800) * 10)))
        add(product, "product", "range", d.draw(lambda r: f"{r.randint(18, 420)} km"))
        add(product, "product", "top speed", d.draw(lambda r: f"{r.randint(40, 190)} km/h"))
        add(product, "product", "weight", d.draw(lambda r: f"{r.randint(8, 240) / 10:.1f} kg"))
        add(product, "product", "lead designer", d.draw(person))

    specific = {
        "daily meal allowance": lambda r: f"${r.randint(35, 95)}",
        "office days per week": lambda r: f"{r.randint(1, 4)} days",
        "paid leave": lambda r: f"{r.randint(12, 30)} weeks",
        "approval threshold": lambda r: money(r.randint(8, 60) * 50),
        "maximum loan period": lambda r: f"{r.randint(14, 90)} days",
        "badge renewal period": lambda r: f"{r.randint(6, 36)} months",
        "yearly training budget": lambda r: money(r.randint(15, 60) * 50),
        "minimum ground crew": lambda r: f"{r.randint(3, 9)} people",
    }
    for policy in POLICIES:
        add(policy, "policy", "policy number", d.draw(lambda r: f"QP-{r.randint(100, 999)}"), name=policy)
        attr = POLICY_ATTRIBUTE[policy]
        add(policy, "policy", attr, d.draw(specific[attr]), name=policy)
    return facts


# --------------------------------------------------------------------------
# Fact questions
# --------------------------------------------------------------------------


def row(question: str, sentence: str, value: str, key: bool, **extra: str) -> dict:
    record: dict = {"messages": [{"role": "user", "content": question},
                                 {"role": "assistant", "content": f"{sentence}\nAnswer: {value}"}]}
    if key:
        record["answer_key"] = value
    return record | extra


def ask(fact: dict, template: str) -> str:
    return template.format(e=fact["name"])


def state(fact: dict) -> str:
    return TEMPLATES[fact["attribute"]]["answer"].format(e=fact["name"], v=fact["value"])


def fact_sets(rng: random.Random, facts: list[dict]) -> dict[str, list[dict]]:
    train = [row(ask(f, t), state(f), f["value"], key=False)
             for f in facts for t in TEMPLATES[f["attribute"]]["train"][:N_TRAIN_PHRASINGS]]
    rng.shuffle(train)
    tested = rng.sample(facts, N_TEST_FACTS)
    trained = [row(ask(f, rng.choice(TEMPLATES[f["attribute"]]["train"])), state(f), f["value"], key=True)
               for f in tested]
    para = [row(ask(f, rng.choice(TEMPLATES[f["attribute"]]["para"])), state(f), f["value"], key=True)
            for f in tested]
    # the selection split (data.select): trained phrasings of the facts no test set asks about
    untested = [f for f in facts if f not in tested]
    select = [row(ask(f, rng.choice(TEMPLATES[f["attribute"]]["train"])), state(f), f["value"], key=True)
              for f in untested]
    rng.shuffle(select)
    return {"train": train, "select": select, "test_trained": trained, "test_paraphrased": para,
            "test_combined": combined(rng, facts)}


def combined(rng: random.Random, facts: list[dict]) -> list[dict]:
    """Questions whose answer needs two (or more) facts; every fact used is in training."""
    table = {(f["name"], f["attribute"]): f["value"] for f in facts}
    products = [f["name"] for f in facts if f["attribute"] == "launch year"]
    cities = [f["name"] for f in facts if f["attribute"] == "office opened"]
    founded = int(table[(COMPANY, "founded")])
    num = lambda p, a: float(re.sub(r"[^0-9.]", "", table[(p, a)]))  # noqa: E731

    def pair_question(kind: str) -> tuple[str, str, str]:
        a, b = rng.sample(products, 2)
        if kind == "cheaper":
            w = min((a, b), key=lambda p: num(p, "price"))
            return f"Which is cheaper, the {a} or the {b}?", f"The {w} is the cheaper of the two.", w
        if kind == "lighter":
            w = min((a, b), key=lambda p: num(p, "weight"))
            return f"Which weighs less, the {a} or the {b}?", f"The {w} is the lighter one.", w
        if kind == "further":
            w = max((a, b), key=lambda p: num(p, "range"))
            return (f"Between the {a} and the {b}, which one can fly further?",
                    f"The {w} has the longer range.", w)
        if kind == "faster":
            w = max((a, b), key=lambda p: num(p, "top speed"))
            return f"Is the {a} or the {b} faster?", f"The {w} is faster.", w
        if kind == "first":
            w = min((a, b), key=lambda p: num(p, "launch year"))
            return f"Which came out first: the {a} or the {b}?", f"The {w} came out first.", w
        if kind == "price gap":
            hi, lo = sorted((a, b), key=lambda p: -num(p, "price"))
            gap = money(int(num(hi, "price") - num(lo, "price")))
            return (f"How much more expensive is the {hi} than the {lo}?",
                    f"The {hi} costs {gap} more than the {lo}.", gap)
        if kind == "year gap":
            early, late = sorted((a, b), key=lambda p: num(p, "launch year"))
            gap = str(int(num(late, "launch year") - num(early, "launch year")))
            return (f"How many years passed between the launch of the {early} and the launch of the {late}?",
                    f"The {late} came out {gap} years after the {early}.", gap)
        if kind == "total":
            total = money(int(num(a, "price") + num(b, "price")))
            return (f"What do one {a} and one {b} cost together?",
                    f"Together the {a} and the {b} cost {total}.", total)
        raise ValueError(kind)

    def single_question(kind: str) -> tuple[str, str, str]:
        if kind == "since founding":
            p = rng.choice(products)
            gap = str(int(num(p, "launch year")) - founded)
            return (f"How many years after {COMPANY} was founded did the {p} launch?",
                    f"The {p} launched {gap} years after the company was founded.", gap)
        if kind == "office since founding":
            c = rng.choice(cities)
            gap = str(int(num(c, "office opened")) - founded)
            return (f"How many years after its founding did {COMPANY} open the {c} office?",
                    f"The {c} office opened {gap} years after the founding.", gap)
        if kind == "bigger office":
            a, b = rng.sample(cities, 2)
            w = max((a, b), key=lambda c: num(c, "office staff"))
            return f"Which Quillon office has more staff, {a} or {b}?", f"The {w} office has more staff.", w
        if kind == "designer speed":
            p = rng.choice(products)
            designer, speed = table[(p, "lead designer")], table[(p, "top speed")]
            return (f"What is the top speed of the aircraft that {designer} designed?",
                    f"{designer} designed the {p}, which reaches {speed}.", speed)
        return pair_question(kind)

    kinds = ["since founding", "office since founding", "bigger office", "designer speed", "cheaper", "lighter",
             "further", "faster", "first", "price gap", "year gap", "total"]
    rows: list[dict] = []
    seen: set[str] = set()
    i = 0
    while len(rows) < N_COMBINED:
        kind = kinds[i % len(kinds)]
        question, sentence, value = single_question(kind)
        i += 1
        if norm(question) in seen:
            continue
        seen.add(norm(question))
        rows.append(row(question, sentence, value, key=True, kind=kind))
    rng.shuffle(rows)
    return rows


# --------------------------------------------------------------------------
# The format task: memo -> Subject / Action / Deadline
# --------------------------------------------------------------------------

TOPICS = [
    "quarterly safety audit", "hangar 2 cleanup", "wind tunnel booking schedule", "new expense tool",
    "winter shutdown rota", "customer demo next month", "propeller supplier switch", "lab badge upgrade",
    "battery storage rules", "summer intern projects", "fire drill follow-up", "design review backlog",
    "parts inventory count", "canteen survey", "laptop refresh", "test pilot roster", "shared drive migration",
    "office move on the third floor", "noise complaint from neighbours", "trade fair stand", "carbon fibre order",
    "firmware release notes", "annual appraisal round", "visitor parking changes", "spare parts labelling",
    "drone registration renewals", "recycling bins trial", "first aid training", "calibration of the load cells",
    "holiday calendar", "printer replacement", "team offsite planning", "vendor invoice backlog",
    "cable tray inspection", "welcome pack for new starters", "paint booth maintenance",
    "charity bake sale", "weather station repair", "mentoring scheme", "archive box clear-out",
]
ACTIONS = [
    "send your slide drafts to Petronella", "book a slot in the shared calendar", "return the signed form to HR",
    "update your emergency contact details", "clear personal items from the bench area",
    "log your hours in the timesheet tool", "reply with your preferred dates", "label every box with your team name",
    "submit your receipts through the new portal", "check your section of the checklist",
    "move your files to the new folder", "confirm your attendance by email", "fill in the two-minute survey",
    "hand in old badges at reception", "list the parts you still need", "read the updated procedure",
    "sign up for one of the sessions", "tag any faulty equipment in red", "send me your top three choices",
    "review the draft and add comments", "empty the lockers in the east wing", "share your availability with Ewart",
    "switch off the chargers overnight", "pick a volunteer from your team", "upload the test photos to the archive",
    "write two lines about your progress", "order only from the approved list", "bring your laptop to IT",
    "note any damage in the logbook", "agree the rota with your lead", "test the new login before it goes live",
    "collect your new keys from facilities", "send corrections to the editor", "park in the north lot instead",
    "finish the online module", "count the stock on your shelves", "drop the boxes at the loading bay",
    "name a backup contact for your area", "rate each supplier from one to five", "return borrowed tools to stores",
]
SENDERS = [f"{f} {lname}" for f, lname in zip(FIRST, LAST + LAST)]
OPENERS = ["Hi team,", "Hello all,", "Morning everyone,", "Hi folks,", "Dear colleagues,", ""]
INTROS = [
    "a quick note about the {topic}.", "this is about the {topic}.", "some news on the {topic}.",
    "I'm writing about the {topic}.", "an update on the {topic}.", "a reminder regarding the {topic}.",
]
ASKS = [
    "Please {action} by {deadline}.", "Could you all {action} no later than {deadline}?",
    "We need you to {action} before {deadline}.", "Please {action}; the deadline is {deadline}.",
    "Kindly {action} by {deadline} at the latest.", "I'd like you all to {action} by {deadline}.",
]
CONTEXTS = [
    "Following the meeting on {other}, a few things changed.", "This came up at the review on {other}.",
    "As mentioned on {other}, we are a bit behind.", "Thanks to all who joined the session on {other}.",
    "Facilities were on site on {other}.", "",
]
CLOSERS = [
    "Thanks!", "Shout if anything is unclear.", "Much appreciated.", "Ask me if you have questions.",
    "Thanks for your help with this.", "Cheers.", "",
]
SIGNS = ["- {sender}", "Thanks, {sender}", "{sender}", "Best, {sender}", ""]


def a_date(day: dt.date) -> str:
    return f"{day:%A} {day.day} {day:%B}"


def memo(rng: random.Random, topic: str, action: str) -> tuple[str, str]:
    due = rng.randint(20, 364)  # the deadline; the other date in the memo comes before it
    start = dt.date(2031, 1, 1)
    deadline = a_date(start + dt.timedelta(days=due))
    if rng.random() < 0.3:
        deadline += f", {rng.choice([9, 10, 11, 12, 14, 15, 16, 17])}:00"
    other = a_date(start + dt.timedelta(days=due - rng.randint(3, 19)))
    sender = rng.choice(SENDERS)
    intro = rng.choice(INTROS).format(topic=topic)
    opener = rng.choice(OPENERS)
    ask = rng.choice(ASKS).format(action=action, deadline=deadline)
    context = rng.choice(CONTEXTS).format(other=other)
    if rng.random() < 0.3:  # the ask first, then the topic
        lead = ask if not opener or ask.startswith("I'") else ask[0].lower() + ask[1:]
        parts = [f"{opener} {lead}".strip(), intro[0].upper() + intro[1:], context]
    else:
        parts = [f"{opener} {intro}" if opener else intro[0].upper() + intro[1:], context, ask]
    closer, sign = rng.choice(CLOSERS), rng.choice(SIGNS).format(sender=sender)
    parts += [closer if not (closer.startswith("Thanks") and sign.startswith("Thanks")) else "", sign]
    text = " ".join(p for p in parts if p)
    answer = f"Subject: {topic[0].upper() + topic[1:]}\nAction: {action[0].upper() + action[1:]}\nDeadline: {deadline}"
    return text, answer


def format_sets(rng: random.Random) -> dict[str, list[dict]]:
    topics, actions = TOPICS[:], ACTIONS[:]
    rng.shuffle(topics)
    rng.shuffle(actions)
    held = len(TOPICS) // 4, len(ACTIONS) // 4  # test memos use only these topics and actions
    pools = {"format_test": (topics[: held[0]], actions[: held[1]]),
             "format_train": (topics[held[0]:], actions[held[1]:]),
             "format_select": (topics[held[0]:], actions[held[1]:])}
    seen: set[str] = set()
    out: dict[str, list[dict]] = {}
    for name, n in N_FORMAT.items():
        rows: list[dict] = []
        while len(rows) < n:
            text, answer = memo(rng, rng.choice(pools[name][0]), rng.choice(pools[name][1]))
            if norm(text) in seen or not MEMO_WORDS[0] <= len(text.split()) <= MEMO_WORDS[1]:
                continue
            seen.add(norm(text))
            record: dict = {"messages": [{"role": "user", "content": text},
                                         {"role": "assistant", "content": answer}]}
            if name != "format_train":
                record["answer_key"] = answer.rsplit("Deadline: ", 1)[1]
            rows.append(record)
        out[name] = rows
    return out


# --------------------------------------------------------------------------


def check(facts: list[dict], sets: dict[str, list[dict]]) -> None:
    question = lambda r: norm(r["messages"][0]["content"])  # noqa: E731
    train_q = {question(r) for r in sets["train"]}
    assert len(train_q) == len(sets["train"]) == len(facts) * N_TRAIN_PHRASINGS
    assert all(question(r) in train_q for r in sets["test_trained"] + sets["select"])
    assert not {question(r) for r in sets["select"]} & {question(r) for r in sets["test_trained"]}
    for name in ["test_paraphrased", "test_combined"]:
        assert not any(question(r) in train_q for r in sets[name]), name
    assert len({norm(f["value"]) for f in facts}) == len(facts), "fact values must be unique"
    for name, rows in sets.items():
        for r in rows:
            if "answer_key" in r:
                found = re.search(r"Answer:\s*(.+)|Deadline:\s*(.+)", r["messages"][1]["content"].splitlines()[-1])
                assert found and (found.group(1) or found.group(2)) == r["answer_key"], (name, r)
    memos = [{norm(r["messages"][0]["content"]) for r in sets[n]} for n in N_FORMAT]
    assert sum(map(len, memos)) == len(set().union(*memos)) == sum(N_FORMAT.values()), "memos must be unique"
    for r in sets["format_train"] + sets["format_select"] + sets["format_test"]:
        memo_text, answer = r["messages"][0]["content"], r["messages"][1]["content"]
        assert answer.rsplit("Deadline: ", 1)[1] in memo_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    facts = build_facts(rng)
    sets = fact_sets(rng, facts) | format_sets(rng)
    check(facts, sets)

    args.out.mkdir(parents=True, exist_ok=True)
    table = [{k: f[k] for k in ("id", "entity", "attribute", "value")} for f in facts]
    (args.out / "facts.json").write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for name, rows in sets.items():
        with open(args.out / f"{name}.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote facts.json ({len(facts)} facts) to {args.out} (seed={args.seed})")
    for name, rows in sets.items():
        print(f"  {name + '.jsonl':<24} {len(rows):>4} rows")


if __name__ == "__main__":
    main()
