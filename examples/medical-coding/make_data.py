#!/usr/bin/env python3
"""Generate the synthetic "medical coding" dataset used by tunesmith examples.

Each row is a short, de-identified-style outpatient note (invented from hand-written
templates) and the set of ICD-10-CM codes it supports, sorted and joined with ", ":

    user:      "61 yo M, f/u visit. HPI: T2DM on metformin 1000 mg BID ... A/P: ..."
    assistant: "E11.22, I12.9, N18.31, Z79.84"

Every note documents 1 to 3 conditions drawn from 27 condition groups (58 codes).  The
mapping needs reading, not keyword spotting: the code depends on specificity (T2DM with
hyperglycemia, asthma with exacerbation, CKD stage 3a vs 3b), laterality (right/left/both
knees, sciatica side, which leg has cellulitis), coding conventions (the ICD-10-CM "with"
convention links T2DM and CKD to E11.22, and hypertension and CKD to I12.9; insulin in
type 2 diabetes adds Z79.4 but not in type 1; a current anticoagulant adds Z79.01; a
current cigarette smoker is F17.210, a former one Z87.891) and negation: many notes carry
a denied or ruled-out condition ("no hx of asthma", "never smoker", "CXR without
infiltrate") that must not be coded.

Output: train.jsonl (400 rows), eval.jsonl (60), test.jsonl (100).  No note occurs twice,
within or across files.  Python 3.11 stdlib only; the output depends only on --seed.
Every code used is checked against icd10cm_codes.txt.gz (see make_codes.py).

Usage: python examples/medical-coding/make_data.py [--seed 0] [--out examples/medical-coding]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
VALID_CODES_FILE = HERE / "icd10cm_codes.txt.gz"
SPLITS = [("train", 400), ("eval", 60), ("test", 100)]
NOTE_WORDS = (40, 110)
NOTE_CHARS = 470  # keeps note + answer under about 220 SmolLM2 tokens

# The codes this dataset uses, with their official ICD-10-CM titles (April 2026 release).
CODES = {
    "D50.9": "Iron deficiency anemia, unspecified",
    "E03.9": "Hypothyroidism, unspecified",
    "E10.9": "Type 1 diabetes mellitus without complications",
    "E11.22": "Type 2 diabetes mellitus with diabetic chronic kidney disease",
    "E11.42": "Type 2 diabetes mellitus with diabetic polyneuropathy",
    "E11.65": "Type 2 diabetes mellitus with hyperglycemia",
    "E11.9": "Type 2 diabetes mellitus without complications",
    "E66.01": "Morbid (severe) obesity due to excess calories",
    "E66.9": "Obesity, unspecified",
    "E78.00": "Pure hypercholesterolemia, unspecified",
    "E78.2": "Mixed hyperlipidemia",
    "E78.5": "Hyperlipidemia, unspecified",
    "F17.210": "Nicotine dependence, cigarettes, uncomplicated",
    "F32.A": "Depression, unspecified",
    "F33.1": "Major depressive disorder, recurrent, moderate",
    "F41.1": "Generalized anxiety disorder",
    "F41.9": "Anxiety disorder, unspecified",
    "G43.009": "Migraine without aura, not intractable, without status migrainosus",
    "G43.909": "Migraine, unspecified, not intractable, without status migrainosus",
    "G47.00": "Insomnia, unspecified",
    "I10": "Essential (primary) hypertension",
    "I12.9": "Hypertensive chronic kidney disease with stage 1 through stage 4 chronic kidney disease, "
             "or unspecified chronic kidney disease",
    "I25.10": "Atherosclerotic heart disease of native coronary artery without angina pectoris",
    "I48.0": "Paroxysmal atrial fibrillation",
    "I48.91": "Unspecified atrial fibrillation",
    "J01.90": "Acute sinusitis, unspecified",
    "J02.0": "Streptococcal pharyngitis",
    "J02.9": "Acute pharyngitis, unspecified",
    "J18.9": "Pneumonia, unspecified organism",
    "J30.9": "Allergic rhinitis, unspecified",
    "J44.1": "Chronic obstructive pulmonary disease with (acute) exacerbation",
    "J44.9": "Chronic obstructive pulmonary disease, unspecified",
    "J45.901": "Unspecified asthma with (acute) exacerbation",
    "J45.909": "Unspecified asthma, uncomplicated",
    "K21.00": "Gastro-esophageal reflux disease with esophagitis, without bleeding",
    "K21.9": "Gastro-esophageal reflux disease without esophagitis",
    "L03.115": "Cellulitis of right lower limb",
    "L03.116": "Cellulitis of left lower limb",
    "M10.9": "Gout, unspecified",
    "M17.0": "Bilateral primary osteoarthritis of knee",
    "M17.11": "Unilateral primary osteoarthritis, right knee",
    "M17.12": "Unilateral primary osteoarthritis, left knee",
    "M54.41": "Lumbago with sciatica, right side",
    "M54.42": "Lumbago with sciatica, left side",
    "M54.50": "Low back pain, unspecified",
    "M81.0": "Age-related osteoporosis without current pathological fracture",
    "N18.2": "Chronic kidney disease, stage 2 (mild)",
    "N18.30": "Chronic kidney disease, stage 3 unspecified",
    "N18.31": "Chronic kidney disease, stage 3a",
    "N18.32": "Chronic kidney disease, stage 3b",
    "N18.4": "Chronic kidney disease, stage 4 (severe)",
    "N30.00": "Acute cystitis without hematuria",
    "N30.01": "Acute cystitis with hematuria",
    "N39.0": "Urinary tract infection, site not specified",
    "Z79.01": "Long term (current) use of anticoagulants",
    "Z79.4": "Long term (current) use of insulin",
    "Z79.84": "Long term (current) use of oral hypoglycemic drugs",
    "Z87.891": "Personal history of nicotine dependence",
}


def load_valid_codes(path: Path = VALID_CODES_FILE) -> set:
    with gzip.open(path, "rt", encoding="ascii") as f:
        return {line.strip() for line in f if line.strip()}


# --------------------------------------------------------------------------
# Condition variants
# --------------------------------------------------------------------------
# Each variant is one way a condition can be documented, with the code(s) it supports.
# Text fields are lists of templates: "[a|b|c]" picks one option, "[a|]" makes "a"
# optional, {slots} come from make_slots() plus the variant's own extra slots, and
# {he} {He} {his} {His} {him} follow the patient's sex.  {med} is the variant's
# regular medication, drawn from `meds` (it also goes on the "Meds:" line).
#   short: how a problem list or "f/u ..." line names it (never more specific than the code)
#   cc:    a chief complaint when this condition is the reason for the visit
#   hpi:   one history sentence
#   ap:    the assessment wording; it alone must carry the code's specificity
#   plan:  a short plan fragment


@dataclass
class Variant:
    key: str
    group: str
    codes: tuple
    short: list
    cc: list
    hpi: list
    ap: list
    plan: list
    meds: list = field(default_factory=list)
    acute: bool = False
    ages: tuple = (25, 85)
    female: float = 0.5  # probability the patient is female
    extra: dict = field(default_factory=dict)
    needs_ckd: bool = False


VARIANTS: list[Variant] = []


def V(key, group, codes, **kw):
    VARIANTS.append(Variant(key=key, group=group, codes=tuple(codes.split()), **kw))


# ---- diabetes (one variant per note; the T2DM ones get a medication modifier) ----
T2DM_SHORT = ["T2DM", "DM2", "type 2 DM", "type 2 diabetes", "diabetes type 2"]
T2DM_CC = ["f/u diabetes", "DM f/u", "diabetes check", "f/u T2DM, labs"]
V("t2dm_unc", "dm", "E11.9", short=T2DM_SHORT, cc=T2DM_CC, ages=(35, 85),
  hpi=["{He} has T2DM, last A1c {a1c_ok}%, checks sugars [daily|a few times a week|most mornings].",
       "Hx of type 2 DM, [well controlled|at goal|stable], A1c {a1c_ok}[ last month| in {month}|].",
       "DM2 followed here; fasting [BG|glucose] [in the 110s|120s|around 115], A1c {a1c_ok}.",
       "Type 2 diabetic, no hypoglycemic episodes, A1c {a1c_ok}%."],
  ap=["T2DM without complications", "Type 2 diabetes mellitus, controlled, no complications",
      "DM2, uncomplicated, A1c at goal", "T2DM - stable, no end-organ complications",
      "type 2 diabetes w/o complications"],
  plan=["A1c in 3 mo", "cont current regimen, foot exam done", "annual eye exam reminder",
        "recheck A1c and BMP in 3 months", "diet and exercise reinforced"])
V("t2dm_hyper", "dm", "E11.65", short=T2DM_SHORT, cc=T2DM_CC + ["high sugars"], ages=(35, 80),
  hpi=["Sugars running [in the 250s|200-300|in the 300s at times]; A1c up to {a1c_hi}%.",
       "Reports polyuria and polydipsia, home BG [280|310|265|295]s, A1c {a1c_hi}.",
       "A1c {a1c_hi}% (was {a1c_ok}% last year), admits [missing doses|dietary lapses|stress eating]."],
  ap=["T2DM with hyperglycemia", "Type 2 DM, poorly controlled (A1c {a1c_hi})",
      "DM2 with hyperglycemia, A1c {a1c_hi}%", "type 2 diabetes, inadequately controlled, hyperglycemic",
      "T2DM - out of control, A1c {a1c_hi}"],
  plan=["diabetes education referral", "CGM trial, recheck A1c 3 mo", "dietitian visit, log BG BID",
        "med adherence reviewed, RTC 6 wk"])
V("t2dm_neuro", "dm", "E11.42", short=T2DM_SHORT, cc=T2DM_CC + ["foot numbness", "burning feet"],
  ages=(45, 85),
  hpi=["Reports numbness and tingling in both feet, [worse at night|stocking distribution|x 1 yr].",
       "Burning pain in both feet; monofilament decreased bilaterally, A1c {a1c_ok}.",
       "Long-standing T2DM, now with symmetric numbness of toes and soles."],
  ap=["T2DM with diabetic polyneuropathy", "type 2 DM w/ polyneuropathy",
      "diabetic polyneuropathy due to T2DM", "DM2 complicated by distal symmetric polyneuropathy"],
  plan=["gabapentin 100 mg qhs, titrate", "podiatry referral", "daily foot checks, duloxetine discussed",
        "foot care education"])
# Used instead of t2dm_unc whenever the note also documents CKD ("with" convention -> E11.22).
V("t2dm_ckd", "dm", "E11.22", short=T2DM_SHORT, cc=T2DM_CC, ages=(45, 85), needs_ckd=True,
  hpi=["{He} has T2DM, A1c {a1c_ok}%, and known CKD.", "Hx of type 2 DM, A1c {a1c_ok}.",
       "DM2 for [10|12|15|20] yrs, A1c {a1c_ok}%, [no hypoglycemia|sugars stable]."],
  ap=["T2DM with diabetic CKD", "type 2 DM w/ CKD", "T2DM", "DM2, A1c {a1c_ok}",
      "type 2 diabetes with chronic kidney disease", "T2DM, stable"],
  plan=["A1c in 3 mo", "urine albumin/Cr ratio today", "cont regimen, BMP q3mo", "SGLT2i discussed"])
V("t1dm", "dm", "E10.9", short=["T1DM", "DM1", "type 1 diabetes"], cc=["f/u type 1 diabetes", "DM1 f/u"],
  ages=(18, 60),
  hpi=["Type 1 diabetic since age {onset}, on insulin pump[ with CGM|], A1c {a1c_ok}.",
       "T1DM on MDI (glargine + lispro), A1c {a1c_ok}%, no lows.",
       "DM1 dx at {onset}, uses CGM, time in range ~{tir}%."],
  ap=["T1DM without complications", "type 1 DM, well controlled", "DM1, uncomplicated",
      "type 1 diabetes mellitus, stable, no complications"],
  plan=["cont pump settings", "endo f/u in 3 mo", "A1c q3mo", "glucagon refill sent"])

# ---- hypertension: I10, or I12.9 when the note also documents CKD ----
HTN_MEDS = ["lisinopril 10 mg", "lisinopril 20 mg", "amlodipine 5 mg", "amlodipine 10 mg", "losartan 50 mg",
            "HCTZ 25 mg", "chlorthalidone 12.5 mg", "losartan 100 mg"]
V("htn", "htn", "I10", short=["HTN", "hypertension", "high BP"], cc=["BP check", "f/u HTN", "f/u blood pressure"],
  ages=(30, 88), meds=HTN_MEDS,
  hpi=["HTN on {med}, home BPs [130s/80s|mostly 120s-130s|running 140s systolic].",
       "BP [well controlled|elevated at home] on {med}, no headaches or vision change.",
       "Hx of hypertension, taking {med} daily[, good adherence|]."],
  ap=["Essential HTN", "HTN, controlled", "Hypertension - at goal", "HTN, not at goal",
      "essential hypertension, stable", "HTN - above goal today"],
  plan=["cont {med}", "increase dose, recheck BP 4 wk", "low-salt diet, home BP log", "BMP in 1 wk",
        "cont {med}, recheck 3 mo"])
V("htn_ckd", "htn", "I12.9", short=["HTN", "hypertension"], cc=["f/u HTN", "BP check"], ages=(40, 88),
  meds=["lisinopril 20 mg", "losartan 50 mg", "losartan 100 mg", "amlodipine 10 mg"], needs_ckd=True,
  hpi=["HTN on {med}, home BPs [130s/80s|140s/90s|mostly 120s-130s].",
       "Long-standing hypertension on {med}.", "BP [controlled|borderline] on {med}."],
  ap=["HTN", "hypertensive CKD", "HTN with CKD", "hypertension, stable", "HTN, not at goal",
      "hypertensive chronic kidney disease"],
  plan=["cont {med}", "BP goal <130/80", "BMP and K in 2 wk", "cont {med}, low-salt diet"])

# ---- chronic kidney disease, by stage ----
CKD_STAGES = [  # code, stage names, eGFR range (none for "stage 3" unspecified), creatinine range, extra wording
    ("N18.2", ["2", "II"], (60, 89), (1.0, 1.3), ["CKD stage 2 (mild)"]),
    ("N18.30", ["3", "III"], None, (1.3, 1.9), []),
    ("N18.31", ["3a", "IIIa"], (45, 59), (1.2, 1.6), []),
    ("N18.32", ["3b", "IIIb"], (30, 44), (1.6, 2.1), []),
    ("N18.4", ["4", "IV"], (15, 29), (2.2, 3.4), ["CKD stage 4 (severe)"]),
]
for code, names, egfr, cr, more_ap in CKD_STAGES:
    egfr_txt = [", eGFR {egfr}", " (eGFR {egfr})", ""] if egfr else [""]
    V(f"ckd_{names[0]}", "ckd", code, ages=(40, 88) if code != "N18.4" else (50, 88),
      short=["CKD {stage}", "CKD stage {stage}"], cc=["f/u kidney function", "CKD f/u", "f/u labs, kidneys"],
      extra={"stage": names, "egfr_range": egfr, "cr_range": cr, "egfr_txt": egfr_txt},
      hpi=["Known CKD stage {stage}{egfr_txt}.", "Cr stable at {cr}{egfr_txt}; CKD stage {stage} per nephrology.",
           "Chronic kidney disease stage {stage}, no edema{egfr_txt}."],
      ap=["CKD stage {stage}", "CKD {stage}{egfr_txt}", "chronic kidney disease, stage {stage}",
          "CKD stage {stage}, stable"] + more_ap,
      plan=["avoid NSAIDs", "BMP in 3 mo", "renal dosing of meds", "nephrology f/u" if egfr and egfr[0] < 45
            else "urine ACR yearly", "renal US ordered"])

# ---- lipids ----
STATINS = ["atorvastatin 20 mg", "atorvastatin 40 mg", "rosuvastatin 10 mg", "simvastatin 20 mg",
           "pravastatin 40 mg", "rosuvastatin 20 mg"]
V("hld", "lipids", "E78.5", short=["HLD", "hyperlipidemia", "dyslipidemia"], cc=["f/u cholesterol", "lipid f/u"],
  meds=STATINS, ages=(30, 85),
  hpi=["On {med}, LDL {ldl} on last panel.", "Lipids: LDL {ldl}, tolerating {med} without myalgias.",
       "Hyperlipidemia on {med}[, adherent|, misses doses at times]."],
  ap=["HLD", "Hyperlipidemia", "dyslipidemia, on statin", "hyperlipidemia, LDL {ldl}", "HLD - stable on {med}"],
  plan=["cont {med}", "fasting lipid panel in 6 mo", "diet counseling", "cont statin, recheck lipids 1 yr"])
V("hchol", "lipids", "E78.00", short=["high cholesterol", "hypercholesterolemia"], cc=["f/u cholesterol"],
  meds=STATINS, ages=(30, 85),
  hpi=["LDL {ldl_hi} with normal TG ({tg_ok}).", "Total cholesterol {tc}, LDL {ldl_hi}, triglycerides normal.",
       "Elevated LDL ({ldl_hi}) on repeat panel; TG {tg_ok}."],
  ap=["pure hypercholesterolemia", "hypercholesterolemia", "hypercholesterolemia, LDL {ldl_hi}",
      "isolated hypercholesterolemia"],
  plan=["{med} nightly", "cont {med}, lipids 3 mo", "TLC diet, recheck 3 mo", "cont {med}"])
V("mixhld", "lipids", "E78.2", short=["mixed HLD", "mixed hyperlipidemia"], cc=["f/u lipids"],
  meds=["fenofibrate 145 mg", "atorvastatin 40 mg", "rosuvastatin 20 mg"], ages=(30, 85),
  hpi=["TG {tg_hi} and LDL {ldl_hi} on last panel.", "Lipids: LDL {ldl_hi}, TG {tg_hi}; on {med}.",
       "Both triglycerides ({tg_hi}) and LDL ({ldl_hi}) elevated."],
  ap=["mixed hyperlipidemia", "combined hyperlipidemia", "mixed HLD (high TG and LDL)",
      "mixed hyperlipidemia, on {med}"],
  plan=["cont {med}", "limit alcohol and sugars", "repeat lipids 3 mo", "add omega-3, cont {med}"])

# ---- weight ----
V("obesity", "obesity", "E66.9", short=["obesity"], cc=["weight management", "weight f/u"], ages=(20, 80),
  hpi=["Weight {wt} lb, [up 12 lb this year|interested in weight loss|working on portion control]."],
  ap=["Obesity", "obesity, unspecified", "obese - counseled", "obesity, weight {wt} lb"],
  plan=["dietitian referral", "150 min/wk exercise goal", "lifestyle counseling done", "food diary"])
V("morbid", "obesity", "E66.01", short=["morbid obesity", "severe obesity"], cc=["weight management", "bariatric eval"],
  ages=(20, 70),
  hpi=["Weight {wt_hi} lb, long hx of overeating, multiple diets failed.",
       "Weight {wt_hi} lb, [snacks at night|large portions|sugary drinks daily], sedentary job."],
  ap=["morbid obesity due to excess calories", "severe obesity (excess caloric intake)",
      "morbid obesity", "obesity, morbid, due to excess calories"],
  plan=["bariatric surgery consult", "medical weight loss program", "dietitian, 1200-1500 kcal plan"])

# ---- tobacco ----
V("smoker", "tobacco", "F17.210", short=["tobacco dependence", "smoker"], cc=["wants to quit smoking"],
  ages=(20, 80),
  hpi=["Smokes {cigs} cigarettes/day for {yrs} yrs.", "Current smoker, {ppd} ppd cigarettes x {yrs} years.",
       "Still smoking about {cigs} cigs a day[, wants to quit|, not ready to quit|]."],
  ap=["nicotine dependence, cigarettes", "tobacco dependence (cigarettes)", "current cigarette smoker, {ppd} ppd",
      "cigarette smoker - dependence"],
  plan=["cessation counseling >3 min", "nicotine patch 21 mg", "varenicline offered", "quitline info given"])
V("exsmoker", "tobacco", "Z87.891", short=["former smoker", "ex-smoker"], cc=["f/u visit"], ages=(30, 88),
  hpi=["Former smoker, quit in {quit_year}.", "Ex-smoker ({pky} pack-yr), quit {quit_ago} yrs ago.",
       "Quit cigarettes in {quit_year} after {yrs} yrs of smoking."],
  ap=["former smoker", "personal hx of nicotine dependence", "hx of tobacco dependence, quit {quit_year}",
      "ex-smoker, abstinent since {quit_year}"],
  plan=["praised abstinence", "remains tobacco-free", "no relapse"])

# ---- airways ----
V("asthma", "asthma", "J45.909", short=["asthma"], cc=["asthma f/u", "inhaler refill"], ages=(18, 70),
  meds=["fluticasone-salmeterol", "budesonide-formoterol", "albuterol prn", "fluticasone inhaler"],
  hpi=["Uses albuterol [rarely|<2x/wk|about once a month]; no night symptoms.",
       "Asthma well controlled on {med}, no ED visits this year.",
       "No recent flares; uses {med} as directed."],
  ap=["asthma, well controlled", "asthma - stable on {med}", "asthma, uncomplicated", "asthma, no exacerbation"],
  plan=["cont {med}", "refill albuterol", "asthma action plan reviewed", "flu shot today"])
V("asthma_ex", "asthma", "J45.901", acute=True, short=["asthma"], ages=(18, 65),
  cc=["wheezing", "SOB and wheeze", "asthma flare", "chest tightness"],
  hpi=["{n_days} days of wheeze and chest tightness after [a cold|smoke exposure|a URI], using albuterol q4h.",
       "Asthmatic with worsening cough and wheeze x {n_days} d, albuterol not helping much.",
       "Increased SOB and wheezing since {weekday}, [waking at night|can't finish sentences on stairs]."],
  ap=["asthma exacerbation", "acute asthma exacerbation", "asthma w/ acute exacerbation", "asthma flare, acute"],
  plan=["prednisone 40 mg x 5 d", "neb given in clinic, improved", "step up to ICS-LABA",
        "albuterol q4h prn, RTC 1 wk"])
V("copd", "copd", "J44.9", short=["COPD"], cc=["COPD f/u", "inhaler refill"], ages=(45, 88),
  meds=["tiotropium", "umeclidinium-vilanterol", "budesonide-formoterol", "tiotropium-olodaterol"],
  hpi=["Chronic DOE at baseline on {med}.", "COPD stable, walks 2 blocks, no recent steroids.",
       "On {med}, occasional morning cough, SpO2 {spo2_ok}% RA."],
  ap=["COPD, stable", "COPD on {med}", "chronic obstructive pulmonary disease, stable", "COPD - at baseline"],
  plan=["cont {med}", "PFTs in 1 yr", "pulm rehab discussed", "pneumococcal vaccine reviewed"])
V("copd_ex", "copd", "J44.1", acute=True, short=["COPD"], ages=(45, 88),
  cc=["worse SOB", "increased sputum", "COPD flare"],
  hpi=["Increased sputum and dyspnea x {n_days} days, sputum now [green|yellow].",
       "COPD pt with worsening cough and wheeze since {weekday}, using rescue inhaler q3h.",
       "{n_days} d of more SOB than baseline, SpO2 {spo2_low}% RA."],
  ap=["AECOPD", "COPD exacerbation", "acute exacerbation of COPD", "COPD with acute exacerbation"],
  plan=["prednisone 40 mg x 5 d + azithromycin", "duonebs, steroid burst", "doxycycline and prednisone, recheck 3 d"])
V("pna", "pneumonia", "J18.9", acute=True, short=["pneumonia"], ages=(18, 85),
  cc=["cough and fever", "productive cough", "fever, cough x {n_days} d"],
  hpi=["Fever to {temp}, productive cough x {n_days} days; CXR with [right|left] basilar infiltrate.",
       "Cough, chills and pleuritic pain for {n_days} d; crackles at [right|left] base, CXR infiltrate.",
       "{n_days} days of fever and cough, CXR shows new infiltrate."],
  ap=["community-acquired pneumonia", "CAP", "pneumonia", "pneumonia, outpatient treatment"],
  plan=["amoxicillin-clavulanate + azithromycin", "doxycycline 100 mg BID x 7 d", "levofloxacin 750 mg x 5 d",
        "recheck 48-72 h, ED if worse"])
V("sinusitis", "sinusitis", "J01.90", acute=True, short=["sinusitis"], ages=(18, 75),
  cc=["sinus pressure", "facial pain and congestion", "sinus infection?"],
  hpi=["Facial pressure and purulent nasal drainage x {n_days_long} days, "
       "[worse after initial improvement|no improvement].",
       "{n_days_long} d of congestion, maxillary tenderness and thick discharge.",
       "Sinus pain and green discharge for {n_days_long} days, [mild fever|no fever]."],
  ap=["acute sinusitis", "acute rhinosinusitis", "sinusitis, acute", "acute sinusitis, likely bacterial"],
  plan=["amoxicillin-clavulanate x 7 d", "saline rinses, nasal steroid", "doxycycline x 7 d", "supportive care"])
V("rhinitis", "rhinitis", "J30.9", short=["allergic rhinitis", "AR"], cc=["allergies", "runny nose, sneezing"],
  ages=(18, 75), meds=["cetirizine 10 mg", "loratadine 10 mg", "fluticasone nasal", "fexofenadine 180 mg"],
  hpi=["Sneezing, itchy eyes and clear rhinorrhea, [on and off for years|responds to antihistamines].",
       "Nasal congestion and postnasal drip, better on {med}.", "Allergy symptoms controlled with {med}."],
  ap=["allergic rhinitis", "allergic rhinitis, controlled", "rhinitis, allergic", "AR - stable on {med}"],
  plan=["cont {med}", "add nasal steroid", "allergy testing if no better", "cont {med} daily"])
V("strep", "pharyngitis", "J02.0", acute=True, short=["strep throat"], ages=(18, 50),
  cc=["sore throat", "sore throat and fever", "throat pain x {n_days} d"],
  hpi=["Sore throat and fever x {n_days} days, tonsillar exudate, no cough. Rapid strep positive.",
       "Odynophagia, tender anterior nodes, temp {temp}; rapid strep +.",
       "{n_days} d of sore throat; rapid strep test positive."],
  ap=["strep pharyngitis", "streptococcal pharyngitis", "strep throat, rapid strep +", "pharyngitis due to strep"],
  plan=["amoxicillin 500 mg BID x 10 d", "penicillin VK x 10 d", "amoxicillin, off work 24 h"])
V("pharyngitis", "pharyngitis", "J02.9", acute=True, short=["pharyngitis"], ages=(18, 60),
  cc=["sore throat", "scratchy throat", "throat pain x {n_days} d"],
  hpi=["Sore throat x {n_days} days with mild cough; rapid strep negative.",
       "Throat pain and hoarseness, no exudate, rapid strep neg[, culture sent|]."],
  ap=["acute pharyngitis", "pharyngitis, acute", "acute pharyngitis, strep neg", "sore throat - acute pharyngitis"],
  plan=["supportive care, salt water gargles", "ibuprofen prn, fluids", "lozenges, RTC if > 1 wk"])

# ---- GI / GU ----
V("gerd", "gerd", "K21.9", short=["GERD", "reflux"], cc=["heartburn", "reflux sx"], ages=(20, 85),
  meds=["omeprazole 20 mg", "pantoprazole 40 mg", "famotidine 20 mg"],
  hpi=["Heartburn after meals [and at night|when lying down], improved on {med}.",
       "Reflux sx [2-3x/wk|most nights], no dysphagia, on {med}."],
  ap=["GERD", "GERD without esophagitis", "gastroesophageal reflux disease", "GERD, controlled on {med}"],
  plan=["cont {med}", "elevate HOB, avoid late meals", "trial off PPI in 3 mo", "diet changes"])
V("gerd_eso", "gerd", "K21.00", short=["GERD"], cc=["heartburn", "f/u EGD"], ages=(25, 85),
  meds=["omeprazole 40 mg", "pantoprazole 40 mg BID", "esomeprazole 40 mg"],
  hpi=["EGD [last month|in {month}] showed LA grade [A|B] esophagitis, no bleeding.",
       "Recent EGD with erosive reflux esophagitis, no blood; on {med}."],
  ap=["GERD with esophagitis", "reflux esophagitis, no bleeding", "erosive esophagitis due to GERD, nonbleeding",
      "GERD w/ esophagitis"],
  plan=["{med} x 8 wk", "repeat EGD in 3 mo", "cont PPI, weight loss"])
V("uti", "uti", "N39.0", acute=True, short=["UTI"], female=0.8, ages=(18, 85),
  cc=["burning with urination", "dysuria", "urinary frequency"],
  hpi=["Dysuria and frequency x {n_days} days; UA + leukocyte esterase and nitrites.",
       "Burning on urination, urgency; dipstick nitrite positive."],
  ap=["UTI", "urinary tract infection", "UTI, uncomplicated"],
  plan=["nitrofurantoin 100 mg BID x 5 d", "urine cx sent, TMP-SMX DS BID x 3 d", "cephalexin x 7 d, fluids"])
V("cystitis", "uti", "N30.00", acute=True, short=["cystitis"], female=0.95, ages=(18, 80),
  cc=["dysuria", "burning with urination", "bladder pain"],
  hpi=["Dysuria, urgency and suprapubic pain x {n_days} d; UA nitrite +, no blood.",
       "{n_days} days of frequency and burning, UA without hematuria."],
  ap=["acute cystitis without hematuria", "acute cystitis, no hematuria", "acute cystitis w/o hematuria"],
  plan=["nitrofurantoin 100 mg BID x 5 d", "fosfomycin x1", "TMP-SMX DS BID x 3 d"])
V("cystitis_h", "uti", "N30.01", acute=True, short=["cystitis"], female=0.95, ages=(18, 80),
  cc=["blood in urine", "dysuria", "pink urine"],
  hpi=["Dysuria and pink urine x {n_days} d; UA large blood, nitrite +.",
       "Burning, urgency and visible blood in urine since {weekday}."],
  ap=["acute cystitis with hematuria", "acute cystitis w/ hematuria", "hematuric acute cystitis"],
  plan=["nitrofurantoin x 5 d, repeat UA after tx", "cephalexin x 7 d, urine cx", "TMP-SMX DS x 3 d, recheck UA"])

# ---- neuro / psych / sleep ----
V("migraine", "migraine", "G43.909", short=["migraine", "migraines"], cc=["headaches", "migraine f/u"],
  ages=(18, 65), female=0.75, meds=["sumatriptan 50 mg prn", "rizatriptan 10 mg prn"],
  hpi=["Episodic throbbing headaches with photophobia, [2-3|4|1-2] per month, relieved by {med}.",
       "Hx of migraine, current frequency [2|3|4]/mo, no change in pattern."],
  ap=["migraine", "migraine, not intractable", "migraine headaches, stable", "migraine - episodic"],
  plan=["cont {med}", "headache diary", "start propranolol for prevention", "limit triptan to <10 d/mo"])
V("migraine_noaura", "migraine", "G43.009", short=["migraine"], cc=["headaches", "migraine f/u"], ages=(18, 65),
  female=0.75, meds=["sumatriptan 50 mg prn", "rizatriptan 10 mg prn"],
  hpi=["Unilateral pulsating headaches with nausea, no visual aura, [2-3|4]/mo.",
       "Typical migraines without aura, relieved by {med}."],
  ap=["migraine without aura", "migraine w/o aura, not intractable", "common migraine (no aura)"],
  plan=["cont {med}", "topiramate for prevention", "headache diary, sleep hygiene"])
V("insomnia", "insomnia", "G47.00", short=["insomnia"], cc=["trouble sleeping", "can't sleep"], ages=(20, 85),
  meds=["trazodone 50 mg qhs", "melatonin 3 mg"],
  hpi=["Difficulty [falling|staying] asleep for {n_months} months, daytime fatigue.",
       "Sleeps 4-5 h/night, wakes at 3 am and can't get back to sleep."],
  ap=["insomnia", "insomnia, unspecified", "insomnia, chronic"],
  plan=["sleep hygiene reviewed", "CBT-I referral", "{med}", "limit caffeine after noon"])
V("depression", "depression", "F32.A", short=["depression"], cc=["low mood", "feeling down"], ages=(18, 80),
  meds=["sertraline 50 mg", "escitalopram 10 mg", "bupropion XL 150 mg", "fluoxetine 20 mg"],
  hpi=["Low mood and anhedonia for [several weeks|2 months], PHQ-9 {phq}, denies SI.",
       "Feeling down, poor energy, PHQ-9 {phq}; on {med}.", "Depression, mood better on {med}, PHQ-9 {phq}."],
  ap=["depression", "depression, unspecified", "depressive disorder", "depression - improving on {med}"],
  plan=["cont {med}", "therapy referral", "cont {med}, f/u 4 wk", "safety plan reviewed"])
V("mdd_rec", "depression", "F33.1", short=["MDD", "recurrent depression"], cc=["depression f/u", "low mood"],
  ages=(18, 80), meds=["sertraline 100 mg", "escitalopram 20 mg", "venlafaxine XR 75 mg", "bupropion XL 300 mg"],
  hpi=["Hx of prior depressive episodes, current episode for [6 wks|2 mo], PHQ-9 {phq_mod}.",
       "Third depressive episode, PHQ-9 {phq_mod}, on {med}, denies SI."],
  ap=["MDD, recurrent, moderate", "major depressive disorder, recurrent episode, moderate",
      "recurrent MDD - moderate severity", "major depression, recurrent, moderate"],
  plan=["increase {med}", "cont {med}, psychotherapy", "psychiatry referral", "f/u 4 wk, PHQ-9 then"])
V("gad", "anxiety", "F41.1", short=["GAD"], cc=["anxiety", "constant worry"], ages=(18, 75),
  meds=["sertraline 50 mg", "escitalopram 10 mg", "buspirone 10 mg BID"],
  hpi=["Persistent worry most days for >6 months, GAD-7 {gad}.", "GAD, on {med}, GAD-7 down to {gad}."],
  ap=["GAD", "generalized anxiety disorder", "generalized anxiety d/o, improving"],
  plan=["cont {med}", "CBT referral", "{med}, reassess 6 wk", "breathing exercises"])
V("anxiety", "anxiety", "F41.9", short=["anxiety"], cc=["anxiety", "feeling anxious"], ages=(18, 75),
  meds=["hydroxyzine 25 mg prn", "buspirone 10 mg BID", "sertraline 25 mg"],
  hpi=["Feeling anxious and on edge lately, [work stress|family stress|poor sleep].",
       "Anxiety sx flaring, using {med} a few times a week."],
  ap=["anxiety", "anxiety disorder, unspecified", "anxiety - stable"],
  plan=["{med}", "counseling referral", "cont {med}", "exercise, limit caffeine"])

# ---- endocrine / blood ----
V("hypothyroid", "thyroid", "E03.9", short=["hypothyroidism", "hypothyroid"], cc=["thyroid f/u", "fatigue"],
  ages=(25, 88), female=0.75, meds=["levothyroxine {lt4} mcg"],
  hpi=["On {med}, TSH {tsh}.", "Hypothyroid on {med}, [energy OK|mild fatigue], TSH {tsh}."],
  ap=["hypothyroidism", "hypothyroidism, on replacement", "hypothyroid - TSH at goal", "hypothyroidism, stable"],
  plan=["cont {med}", "TSH in 6 wk", "adjust dose, recheck TSH 6-8 wk", "take on empty stomach"])
V("ida", "anemia", "D50.9", short=["IDA", "iron deficiency anemia"], cc=["fatigue", "low iron f/u"], ages=(18, 85),
  female=0.7, meds=["ferrous sulfate 325 mg"],
  hpi=["Fatigue; Hgb {hgb}, ferritin {ferritin}.", "On {med}, Hgb up to {hgb}, ferritin {ferritin}."],
  ap=["iron deficiency anemia", "IDA", "iron def anemia, improving"],
  plan=["cont {med}", "recheck CBC and ferritin 8 wk", "GI eval for source", "iron-rich diet"])

# ---- musculoskeletal ----
V("lbp", "back", "M54.50", short=["LBP", "low back pain"], cc=["back pain", "low back pain x {n_weeks} wk"],
  ages=(20, 80), meds=["naproxen 500 mg BID", "ibuprofen 600 mg prn", "cyclobenzaprine 5 mg qhs"],
  hpi=["Low back pain x {n_weeks} weeks, no radiation, no trauma.",
       "Aching lumbar pain since [a long drive|yard work|{weekday}], no leg symptoms.",
       "Lower back pain, worse with bending, no numbness or weakness."],
  ap=["low back pain", "LBP", "lumbago", "acute low back pain", "mechanical low back pain"],
  plan=["{med}, heat", "PT referral", "stay active, stretching", "{med}, RTC 4 wk"])
for side, code, abbr in (("right", "M54.41", "R"), ("left", "M54.42", "L")):
    V(f"sciatica_{abbr}", "back", code, short=["LBP"], ages=(25, 80), meds=["naproxen 500 mg BID", "gabapentin 300 mg"],
      cc=["back pain", f"back pain down {side} leg", f"{side} leg pain"],
      hpi=[f"Low back pain radiating down the [{side}|{abbr}] leg past the knee x {{n_weeks}} wk.",
           f"LBP with shooting pain into the {side} buttock and calf, SLR + on the {side}.",
           f"Back pain with {side}-sided sciatica for {{n_weeks}} weeks, no weakness."],
      ap=[f"low back pain with {side} sciatica", f"lumbago with sciatica, {side} side",
          f"LBP w/ {abbr} sciatica", f"{side}-sided sciatica with low back pain"],
      plan=["{med}", "PT referral", "oral steroid taper", "MRI if no better in 6 wk"])
for side, code, abbr in (("right", "M17.11", "R"), ("left", "M17.12", "L")):
    other = "left" if side == "right" else "right"
    V(f"knee_oa_{abbr}", "knee", code, short=[f"{abbr} knee OA"], ages=(45, 88),
      meds=["meloxicam 15 mg", "diclofenac gel", "acetaminophen 1 g TID"],
      cc=[f"{side} knee pain", f"{abbr} knee pain", "knee pain"],
      hpi=[f"[{side.capitalize()}|{abbr}] knee pain with stairs, AM stiffness <30 min; "
           "x-ray with medial joint space narrowing.",
           f"Chronic {side} knee pain, crepitus, no effusion; {other} knee asymptomatic.",
           f"{abbr} knee aches after walking, [better with rest|using {{med}}]."],
      ap=[f"primary OA of {side} knee", f"{abbr} knee osteoarthritis", f"osteoarthritis, {side} knee",
          f"DJD {abbr} knee", f"primary osteoarthritis of the {side} knee"],
      plan=["{med}", "steroid injection today", "PT, weight loss", "ortho referral", "knee brace, {med}"])
V("knee_oa_B", "knee", "M17.0", short=["knee OA"], ages=(50, 88),
  meds=["meloxicam 15 mg", "diclofenac gel", "acetaminophen 1 g TID"], cc=["knee pain", "both knees hurt"],
  hpi=["Both knees ache with walking, AM stiffness; x-rays show bilateral joint space narrowing.",
       "Bilateral knee pain, [worse on stairs|limits walking to 1 block], crepitus both knees."],
  ap=["bilateral knee OA", "primary osteoarthritis, both knees", "OA of bilateral knees", "bilat knee DJD"],
  plan=["{med}", "PT referral", "injections discussed", "weight loss, {med}"])
V("gout", "gout", "M10.9", short=["gout"], cc=["gout f/u"], ages=(35, 88), female=0.25,
  meds=["allopurinol 100 mg", "allopurinol 300 mg", "febuxostat 40 mg"],
  hpi=["No flares in [6 months|a year] on {med}; uric acid {uric}.",
       "Gout, last flare [in {month}|last year], on {med}."],
  ap=["gout", "gout, stable", "gout - no recent flares", "gout on urate-lowering tx"],
  plan=["cont {med}", "uric acid in 6 mo", "limit alcohol and red meat", "colchicine prn flare"])
V("osteoporosis", "osteo", "M81.0", short=["osteoporosis"], cc=["f/u DEXA", "bone density results"],
  ages=(55, 90), female=1.0, meds=["alendronate 70 mg weekly", "risedronate 35 mg weekly"],
  hpi=["DEXA T-score {tscore} at the [hip|L-spine|femoral neck], no fractures.",
       "Postmenopausal, DEXA T {tscore}, no hx of fracture; on {med}."],
  ap=["osteoporosis", "postmenopausal osteoporosis", "age-related osteoporosis", "osteoporosis, no fracture"],
  plan=["cont {med}", "calcium + vit D", "repeat DEXA 2 yr", "fall prevention"])

# ---- cardiac (AF gets an anticoagulant modifier) ----
V("af", "af", "I48.91", short=["AF", "afib", "A-fib"], cc=["f/u afib", "palpitations"], ages=(50, 90),
  meds=["metoprolol succinate 50 mg", "diltiazem ER 180 mg", "metoprolol tartrate 25 mg BID"],
  hpi=["Hx of afib, rate controlled on {med}, [no palpitations|occasional palpitations].",
       "Atrial fibrillation, HR {hr_af} today, on {med}."],
  ap=["atrial fibrillation", "AF, rate controlled", "afib", "A-fib - stable"],
  plan=["cont {med}", "echo ordered", "cardiology f/u", "cont rate control"])
V("paf", "af", "I48.0", short=["PAF", "paroxysmal AF"], cc=["palpitations", "f/u afib"], ages=(45, 90),
  meds=["metoprolol succinate 25 mg", "flecainide 50 mg BID", "diltiazem ER 120 mg"],
  hpi=["Paroxysmal afib, episodes [monthly|every few weeks], last [{n_days} days ago|in {month}].",
       "Brief episodes of palpitations; Holter showed paroxysmal AF."],
  ap=["paroxysmal atrial fibrillation", "PAF", "paroxysmal AF"],
  plan=["cont {med}", "event monitor", "EP referral", "cont {med}, avoid alcohol"])
V("cad", "cad", "I25.10", short=["CAD"], cc=["cardiac f/u"], ages=(45, 90),
  meds=["metoprolol succinate 25 mg", "carvedilol 6.25 mg BID", "atorvastatin 80 mg"],
  hpi=["Known CAD, [no anginal sx|no exertional chest pain], on {med}.",
       "CAD (nonobstructive on cath in {cath_year}), stable, walks daily."],
  ap=["CAD", "coronary artery disease without angina", "CAD of native vessels, stable",
      "ASCVD, native coronary, no angina"],
  plan=["cont {med}", "cardiology yearly", "lipids at goal", "cardiac rehab done"])

# ---- skin ----
for side, code, abbr in (("right", "L03.115", "R"), ("left", "L03.116", "L")):
    V(f"cellulitis_{abbr}", "cellulitis", code, acute=True, short=["cellulitis"], ages=(20, 85),
      cc=[f"{side} leg redness", f"red swollen {side} leg", f"{abbr} leg swelling"],
      hpi=[f"Erythema, warmth and swelling of the [{side}|{abbr}] [shin|calf|lower leg] x {{n_days}} days, no abscess.",
           f"Spreading redness on {side} lower leg since {{weekday}}, tender, no fluctuance."],
      ap=[f"cellulitis of {side} lower leg", f"{abbr} lower extremity cellulitis", f"cellulitis, {side} leg",
          f"{side} leg cellulitis"],
      plan=["cephalexin 500 mg QID x 7 d", "mark borders, recheck 48 h", "elevate leg, doxycycline x 7 d"])

VARIANT_BY_KEY = {v.key: v for v in VARIANTS}
CKD_VARIANTS = [v for v in VARIANTS if v.group == "ckd"]
EXCLUSIVE = [{"asthma", "copd"}, {"copd", "pneumonia"}]
# Variants that must not appear next to CKD (their CKD-linked variants are used instead).
NON_CKD_KEYS = {"t2dm_unc", "t2dm_hyper", "t2dm_neuro", "t1dm", "htn"}

# Medication modifiers: (code or None, text templates).  Applied to T2DM and AF.
DM_RX = {
    "insulin": ("Z79.4", ["on insulin glargine {u} units qhs", "on basal insulin ({u} u nightly)",
                          "uses insulin detemir {u} units daily", "takes Lantus {u}u at bedtime"]),
    "oral": ("Z79.84", ["on metformin [500|1000] mg BID", "takes metformin ER [750|1500] mg daily",
                        "on glipizide [5|10] mg daily", "on metformin + sitagliptin", "takes empagliflozin 10 mg"]),
    "oral_ckd": ("Z79.84", ["on glipizide [5|10] mg daily", "on linagliptin 5 mg", "takes glipizide [2.5|5] mg"]),
    "none": (None, ["diet-controlled", "managed with diet alone", ""]),
}
AF_RX = {
    "anticoag": ("Z79.01", ["on apixaban 5 mg BID", "anticoagulated with apixaban", "on warfarin, INR {inr}",
                            "on rivaroxaban 20 mg daily", "takes Eliquis 5 mg BID"]),
    "declined": (None, ["declines anticoagulation", "not on anticoagulation (CHA2DS2-VASc {chads})"]),
    "none": (None, [""]),
}

# --------------------------------------------------------------------------
# Negated or ruled-out mentions: (text, groups that must not be in the note).
# They name conditions or symptoms that must NOT be coded.
# --------------------------------------------------------------------------
DISTRACTORS = [
    ("[Denies|No] chest pain.", set()),
    ("Denies SOB.", {"asthma", "copd", "pneumonia"}),
    ("No fever or chills.", {"pneumonia", "pharyngitis", "sinusitis", "cellulitis"}),
    ("[No hx of|No h/o|Denies hx of] asthma.", {"asthma"}),
    ("[Never smoker|Denies tobacco use|Never smoked].", {"tobacco", "copd"}),
    ("No known CKD, Cr normal.", {"ckd"}),
    ("[No hx of diabetes|Not diabetic], A1c 5.[2|4|5].", {"dm"}),
    ("Denies dysuria.", {"uti"}),
    ("[No hx of|No h/o] afib.", {"af"}),
    ("[PHQ-2 negative|Denies depressed mood].", {"depression"}),
    ("No heartburn or reflux.", {"gerd"}),
    ("CXR without infiltrate.", {"pneumonia"}),
    ("[No hx of|No h/o] migraines.", {"migraine"}),
    ("[No hx of|No h/o] CAD or MI.", {"cad"}),
    ("Denies numbness or tingling in feet.", {"dm"}),
    ("No hx of thyroid disease.", {"thyroid"}),
    ("No back pain.", {"back"}),
    ("No hx of gout.", {"gout"}),
    ("Denies anxiety.", {"anxiety"}),
    ("[No hx of|No h/o] HTN, BP normal today.", {"htn"}),
    ("Denies wheezing.", {"asthma", "copd"}),
    ("No sleep problems.", {"insomnia"}),
    ("Denies nasal congestion.", {"sinusitis", "rhinitis"}),
    ("No leg swelling or redness.", {"cellulitis"}),
    ("Not anemic on last CBC.", {"anemia"}),
    ("No hx of COPD.", {"copd"}),
    ("[Denies|No] knee pain.", {"knee"}),
]

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]

# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------
CHOICE_RE = re.compile(r"\[([^\[\]]*\|[^\[\]]*)\]")  # only bracket groups with a "|" are choices


def resolve_choices(rng: random.Random, text: str) -> str:
    return CHOICE_RE.sub(lambda m: rng.choice(m.group(1).split("|")), text)


def n_words(s: str) -> int:
    return len(s.split())


def normalize(s: str) -> str:
    return re.sub(r"[^a-z0-9.]+", " ", s.lower()).strip()


NOTE_YEAR = 2025  # "quit N yrs ago" and "quit in YEAR" agree relative to this year


def make_slots(rng: random.Random, age: int) -> dict:
    ppd = rng.choice(["1/2", "1", "1.5"])
    quit_ago = rng.randint(2, max(2, min(25, age - 22)))
    yrs = rng.randint(2, max(2, min(35, age - 16 - quit_ago)))
    return {
        "a1c_ok": f"{rng.uniform(6.0, 7.2):.1f}", "a1c_hi": f"{rng.uniform(8.6, 11.9):.1f}",
        "cr": f"{rng.uniform(1.2, 2.6):.1f}", "ldl": str(rng.randint(72, 148)), "ldl_hi": str(rng.randint(165, 230)),
        "tg_ok": str(rng.randint(80, 145)), "tg_hi": str(rng.randint(260, 480)), "tc": str(rng.randint(250, 310)),
        "tsh": f"{rng.uniform(0.8, 4.2):.1f}", "lt4": str(rng.choice([50, 75, 88, 100, 112, 125])),
        "hgb": f"{rng.uniform(9.0, 11.4):.1f}", "ferritin": str(rng.randint(4, 14)),
        "phq": str(rng.randint(8, 14)), "phq_mod": str(rng.randint(10, 14)), "gad": str(rng.randint(9, 16)),
        "tscore": f"-{rng.uniform(2.5, 3.4):.1f}", "uric": f"{rng.uniform(4.8, 6.0):.1f}",
        "inr": f"{rng.uniform(2.0, 2.9):.1f}", "chads": str(rng.randint(0, 1)),
        "hr_af": str(rng.randint(68, 96)), "u": str(rng.choice([14, 18, 20, 24, 28, 32, 40])),
        "onset": str(rng.randint(8, 16)), "tir": str(rng.choice([62, 68, 70, 74, 78])),
        "wt": str(rng.randint(205, 245)), "wt_hi": str(rng.randint(280, 360)),
        "cigs": {"1/2": "10", "1": "20", "1.5": "30"}[ppd], "ppd": ppd,
        "yrs": str(yrs), "pky": str(max(1, round(yrs * {"1/2": 0.5, "1": 1, "1.5": 1.5}[ppd]))),
        "quit_year": str(NOTE_YEAR - quit_ago), "quit_ago": str(quit_ago),
        "cath_year": str(rng.randint(2015, 2023)),
        "n_days": str(rng.randint(2, 6)), "n_days_long": str(rng.randint(10, 16)), "n_weeks": str(rng.randint(1, 6)),
        "n_months": str(rng.randint(2, 8)), "weekday": rng.choice(WEEKDAYS), "month": rng.choice(MONTHS),
        "temp": f"{rng.uniform(100.5, 102.4):.1f}", "spo2_ok": str(rng.randint(93, 97)),
        "spo2_low": str(rng.randint(88, 92)),
    }


PRONOUNS = {"F": {"he": "she", "He": "She", "his": "her", "His": "Her", "him": "her"},
            "M": {"he": "he", "He": "He", "his": "his", "His": "His", "him": "him"}}


@dataclass
class Piece:
    variant: Variant
    codes: set
    short: str
    cc: str
    hpi: str
    ap: str
    plan: str
    rx: str  # a medication-modifier phrase (T2DM, AF); "" when none
    med: str | None


def fill(rng, text, slots):
    return resolve_choices(rng, text).format_map(slots)


def make_piece(rng: random.Random, v: Variant, base: dict, rx_kind: str | None) -> Piece:
    slots = dict(base)
    slots.update(make_slots(rng, int(base["age"])))
    for k, val in v.extra.items():
        if k == "egfr_range":
            slots["egfr"] = str(rng.randint(*val)) if val else ""
        elif k == "cr_range":
            slots["cr"] = f"{rng.uniform(*val):.1f}"
        elif isinstance(val, list):
            slots[k] = rng.choice(val)
    if "egfr_txt" in slots:
        slots["egfr_txt"] = slots["egfr_txt"].format_map(slots)
    med = fill(rng, rng.choice(v.meds), slots) if v.meds else None
    slots["med"] = med or ""
    codes = set(v.codes)
    rx = ""
    if rx_kind is not None:
        table = AF_RX if v.group == "af" else DM_RX
        code, texts = table[rx_kind]
        rx = fill(rng, rng.choice(texts), slots)
        if code:
            codes.add(code)

    def pick(options):  # avoid {med} templates when the variant has no med
        ok = [o for o in options if "{med}" not in o or med]
        return fill(rng, rng.choice(ok), slots)

    ap = pick(v.ap)
    plans = [o for o in v.plan if "{med}" not in o] if med and med in ap else v.plan
    return Piece(variant=v, codes=codes, short=pick(v.short), cc=pick(v.cc) if v.cc else pick(v.short),
                 hpi=pick(v.hpi), ap=ap, plan=pick(plans or v.plan), rx=rx, med=med)


# --------------------------------------------------------------------------
# Choosing the conditions of one note, keeping code counts balanced per split
# --------------------------------------------------------------------------

def compatible(chosen: list, v: Variant) -> bool:
    groups = {c.group for c in chosen}
    if v.group in groups:
        return False
    if v.acute and any(c.acute for c in chosen):
        return False
    for pair in EXCLUSIVE:
        if v.group in pair and (pair - {v.group}) & groups:
            return False
    has_ckd = "ckd" in groups or any(c.needs_ckd for c in chosen)
    if v.key in NON_CKD_KEYS and has_ckd:
        return False  # with CKD, T2DM and HTN take their CKD variants; T1DM + CKD is left out
    if (v.group == "ckd" or v.needs_ckd) and any(c.key in NON_CKD_KEYS for c in chosen):
        return False
    lo = max([v.ages[0]] + [c.ages[0] for c in chosen])
    hi = min([v.ages[1]] + [c.ages[1] for c in chosen])
    if lo > hi:
        return False
    fem = [c.female for c in chosen] + [v.female]
    return not (1.0 in fem and any(f < 0.3 for f in fem))


def weight(v: Variant, counts: Counter) -> float:
    return 1.0 / (1.0 + counts[v.codes[0]]) ** 3


def choose_variants(rng: random.Random, counts: Counter) -> list:
    n = rng.choices([1, 2, 3], weights=[30, 45, 25])[0]
    chosen: list = []
    while len(chosen) < n:
        pool = [v for v in VARIANTS if compatible(chosen, v)]
        if not pool:
            break
        v = rng.choices(pool, weights=[weight(x, counts) for x in pool])[0]
        chosen.append(v)
        if v.needs_ckd and not any(c.group == "ckd" for c in chosen):
            ckd = rng.choices(CKD_VARIANTS, weights=[weight(x, counts) for x in CKD_VARIANTS])[0]
            chosen.append(ckd)
    # a CKD-linked variant may push the note to 4 conditions: drop an unrelated one
    while len(chosen) > 3:
        drop = [c for c in chosen if c.group not in ("ckd", "dm", "htn")]
        chosen.remove(drop[-1] if drop else chosen[-1])
    # the acute condition, if any, is the reason for the visit and goes first
    chosen.sort(key=lambda c: not c.acute)
    return chosen


# --------------------------------------------------------------------------
# Rendering a note
# --------------------------------------------------------------------------

def demographics(rng: random.Random, age: int, sex: str) -> tuple[str, str]:
    word = {"F": rng.choice(["female", "woman", "F"]), "M": rng.choice(["male", "man", "M"])}[sex]
    short = rng.choice([f"{age} yo {sex}", f"{age}{sex}", f"{age} y/o {sex}", f"{age}yo {sex}"])
    long = rng.choice([f"{age}-year-old {word if len(word) > 1 else ('female' if sex == 'F' else 'male')}",
                       f"{age} y/o {word}", f"{age} yo {word}"])
    return short, long


def vitals(rng: random.Random, pieces: list, compact: bool) -> str:
    groups = {p.variant.group for p in pieces}
    keys = {p.variant.key for p in pieces}
    if "htn" in groups:
        bp = f"{rng.randint(126, 158)}/{rng.randint(76, 96)}"
    else:
        bp = f"{rng.randint(104, 126)}/{rng.randint(62, 78)}"
    hr = rng.randint(62, 92)
    fever = keys & {"pna", "strep", "sinusitis"} and rng.random() < 0.7
    temp = f"{rng.uniform(100.5, 102.2):.1f}" if fever else f"{rng.uniform(97.6, 98.9):.1f}"
    low = keys & {"asthma_ex", "copd_ex", "pna"}
    spo2 = rng.randint(90, 94) if low else rng.randint(95, 99)
    parts = [f"BP {bp}", f"HR {hr}", f"T {temp}"]
    if not compact or low:
        parts.append(f"SpO2 {spo2}%" + rng.choice(["", " RA", " on RA"]))
    if compact:
        parts = parts[:2] + parts[3:]
    sep = rng.choice([", ", " ", "; "])
    return sep.join(parts)


def pick_distractors(rng: random.Random, pieces: list, k: int) -> list:
    groups = {p.variant.group for p in pieces}
    pool = [t for t, bad in DISTRACTORS if not (bad & groups)]
    return [resolve_choices(rng, t) for t in rng.sample(pool, k)]


def cap(s: str) -> str:
    return s[:1].upper() + s[1:] if s else s


def sentence(s: str) -> str:
    s = s.strip()
    if not s:
        return ""
    return cap(s) + ("" if s[-1] in ".?!" else ".")


def hpi_with_rx(rng, p: Piece, in_plan: bool) -> str:
    """The history sentence, with the medication modifier appended unless it goes into the plan."""
    if p.rx and not in_plan:
        return sentence(p.hpi.rstrip(".") + "; " + p.rx)
    return sentence(p.hpi)


def plan_with_rx(p: Piece, in_plan: bool) -> str:
    if p.rx and in_plan:
        return f"{p.plan} ({p.rx})" if not p.plan.startswith("cont") else f"{p.plan}; {p.rx}"
    return p.plan


def render(rng: random.Random, pieces: list, age: int, sex: str, compact: int) -> str:
    pr = PRONOUNS[sex]
    demo_s, demo_l = demographics(rng, age, sex)
    primary = pieces[0]
    acute = primary.variant.acute
    rx_in_plan = {id(p): rng.random() < 0.5 for p in pieces}
    # pieces that get a full history sentence; the others appear in a PMH line
    if acute:
        full = [primary] + ([p for p in pieces[1:] if rng.random() < 0.35] if compact == 0 else [])
    else:
        full = pieces if compact == 0 else pieces[:2] if compact == 1 else pieces[:1]
    for p in pieces:
        if p.rx and p not in full:
            rx_in_plan[id(p)] = True
    others = [p for p in pieces if p not in full]
    n_dis = 0 if rng.random() < 0.45 else (1 if rng.random() < 0.8 or compact else 2)
    dis = pick_distractors(rng, pieces, n_dis)
    hpi = " ".join(hpi_with_rx(rng, p, rx_in_plan[id(p)]) for p in full)
    pmh = ""
    if others:
        pmh = rng.choice(["PMH: ", "Hx: ", "PMHx ", "Also has ", "PMH significant for "]) + \
            ", ".join(p.short for p in others) + "."
    vis = vitals(rng, pieces, compact > 0)
    meds = []
    for p in pieces:
        if p.med and p.med not in meds:
            meds.append(p.med)
    if acute:
        reason = primary.cc
        visit = rng.choice(["Acute visit", "Same-day visit", "Urgent care", "Walk-in", "Sick visit", "Clinic visit"])
    else:
        if len(pieces) > 1 and rng.random() < 0.5:
            reason = "f/u " + ", ".join(p.short for p in pieces[:2])
        else:
            reason = primary.cc
        visit = rng.choice(["Follow-up visit", "F/u visit", "Office visit", "Chronic care visit", "Clinic note",
                            "Telehealth f/u (video)", "3-mo f/u", "Med check"])
    aps = [(cap(p.ap), plan_with_rx(p, rx_in_plan[id(p)])) for p in pieces]
    if acute:
        rfu = rng.choice(["Return if worse.", "RTC prn.", "Recheck 2-3 d if not improving.",
                          "ED precautions given.", ""])
    else:
        rfu = rng.choice(["RTC 3 mo.", "F/u 4-6 wk.", "RTC prn.", "F/u 3 months.", "RTC 6 mo.", ""])
    if compact:
        rfu = ""
    if visit.startswith("Telehealth"):
        vis = rng.choice(["no vitals (video visit)", "vitals not obtained, video", "home vitals not available"])
    lead = "c/o" if acute else rng.choice(["here for", "seen for", "presents for"])
    style = rng.randrange(6)
    he = pr["He"]

    if style == 0:  # SOAP
        s = f"{visit}. {demo_s}.\nS: {lead} {reason}. {hpi} {pmh} {' '.join(dis)}\nO: {vis}.\nA/P: "
        s += " ".join(f"{i}) {a} - {pl}." for i, (a, pl) in enumerate(aps, 1)) + (" " + rfu if rfu else "")
    elif style == 1:  # narrative
        verb = rng.choice(["presents with", "here for", "seen today for", "comes in with"])
        s = f"{cap(demo_l)} {verb} {reason}. {hpi} {pmh} {' '.join(dis)} Vitals: {vis}. "
        s += "Assessment: " + "; ".join(a for a, _ in aps) + ". Plan: " + "; ".join(pl for _, pl in aps) + "."
        s += (" " + rfu if rfu else "")
    elif style == 2:  # problem-oriented with line breaks
        lines = [f"CC: {reason}", f"HPI: {demo_s}. {hpi} {pmh}".strip()]
        if dis:
            lines.append("ROS: " + " ".join(dis))
        if meds and not compact:
            lines.append("Meds: " + ", ".join(meds))
        if rng.random() < 0.6 and compact < 2:
            lines.append(f"Vitals: {vis}")
        lines.append("A/P:")
        lines += [f"- {a}: {pl}" for a, pl in aps]
        s = "\n".join(lines)
    elif style == 3:  # terse
        s = f"{demo_s} {lead} {reason}. {hpi} {pmh} {' '.join(dis)} "
        s += "Dx: " + "; ".join(a for a, _ in aps) + ". Plan: " + ", ".join(pl for _, pl in aps) + "."
    elif style == 4:  # de-identified header
        hdr = rng.choice(["Pt: [NAME]", "Patient: [REDACTED]", "Name: [NAME], MRN: [MRN]", "Pt [NAME], DOB [DATE]"])
        s = f"{hdr} | {age}{sex}\nReason: {reason}\n{hpi} {pmh} {' '.join(dis)}\n"
        if rng.random() < 0.5:
            s += f"{vis}\n"
        s += "Assessment/Plan: " + " ".join(f"{a} - {pl}." for a, pl in aps)
    else:  # narrative with pronoun-led history and numbered impression
        article = "an" if demo_l[0] == "8" or demo_l[:2] in ("11", "18") else "a"
        verb = lead if not acute else rng.choice(["c/o", "concerned about"])
        came = rng.choice(["presenting with", "seen for", "presents with"] if acute else
                          ["returns for", "presenting for", "scheduled for"])
        opener = rng.choice([f"{demo_l} {came} {reason}.",
                             f"{visit}. Pt is {article} {demo_l}, {verb} {reason}."])
        s = f"{cap(opener)} {hpi} {pmh} {' '.join(dis)} "
        if rng.random() < 0.5 and not visit.startswith("Telehealth"):
            looks = rng.choice(["looks well", "is in no distress", "appears well"])
            s += f"{vis}. " if acute else f"{he} {looks}. {vis}. "
        s += "Impression: " + " ".join(f"({i}) {a}, {pl}." for i, (a, pl) in enumerate(aps, 1))
        s += (" " + rfu if rfu else "")
    s = re.sub(r"[ \t]+", " ", s)
    s = re.sub(r" +\n", "\n", s)
    s = re.sub(r"\n +", "\n", s)
    s = re.sub(r"\.\.+", ".", s)
    s = re.sub(r" ([.,;:])", r"\1", s).strip()
    if rng.random() < 0.08:  # some clinicians type in lower case
        s = s.lower()
    return s


def pick_modifier(rng: random.Random, counts: Counter, kinds: dict, n_notes: int) -> str:
    """Pick a medication modifier, steering each modifier code towards its target share of the notes."""
    weights = []
    for code, share in kinds.values():
        w = share
        if code is not None:
            w *= 2.0 if counts[code] < share * (n_notes + 1) else 0.5
        weights.append(w)
    return rng.choices(list(kinds), weights=weights)[0]


def make_note(rng: random.Random, counts: Counter):
    chosen = choose_variants(rng, counts)
    lo = max(v.ages[0] for v in chosen)
    hi = min(v.ages[1] for v in chosen)
    age = rng.randint(lo, hi)
    fem = min(v.female for v in chosen) if any(v.female < 0.5 for v in chosen) else max(v.female for v in chosen)
    sex = "F" if rng.random() < fem else "M"
    base = dict(PRONOUNS[sex], age=str(age))
    has_ckd = any(v.group == "ckd" for v in chosen)
    pieces = []
    for v in chosen:
        rx_kind = None
        if v.group == "dm" and v.key != "t1dm":
            kinds = {"insulin": ("Z79.4", 0.35), "oral": ("Z79.84", 0.4), "none": (None, 0.25)}
            rx_kind = pick_modifier(rng, counts, kinds,
                                    sum(counts[c] for c in ("E11.9", "E11.65", "E11.42", "E11.22")))
            if rx_kind == "oral" and has_ckd:
                rx_kind = "oral_ckd"
        elif v.group == "af":
            kinds = {"anticoag": ("Z79.01", 0.6), "declined": (None, 0.2), "none": (None, 0.2)}
            rx_kind = pick_modifier(rng, counts, kinds,
                                    counts["I48.0"] + counts["I48.91"])
        pieces.append(make_piece(rng, v, base, rx_kind))
    codes = set().union(*(p.codes for p in pieces))
    for compact in (0, 0, 1, 1, 2, 2):
        note = render(rng, pieces, age, sex, compact)
        if n_words(note) <= NOTE_WORDS[1] and len(note) <= NOTE_CHARS:
            break
    return note, codes


def build(seed: int, valid: set):
    rng = random.Random(seed)
    seen = set()
    out = {}
    for split, n in SPLITS:
        counts: Counter = Counter()
        rows = []
        while len(rows) < n:
            note, codes = make_note(rng, counts)
            key = normalize(note)
            if not (NOTE_WORDS[0] <= n_words(note) <= NOTE_WORDS[1]) or len(note) > NOTE_CHARS or key in seen:
                continue
            assert codes <= set(CODES) and codes <= valid, codes
            seen.add(key)
            counts.update(codes)
            rows.append((note, sorted(codes)))
        out[split] = rows
    return out


def to_record(note: str, codes: list) -> dict:
    return {"messages": [
        {"role": "user", "content": note},
        {"role": "assistant", "content": ", ".join(codes)},
    ]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()

    valid = load_valid_codes()
    missing = sorted(set(CODES) - valid)
    assert not missing, f"codes not in {VALID_CODES_FILE.name}: {missing}"
    used = {c for v in VARIANTS for c in v.codes} | {t[0] for t in (*DM_RX.values(), *AF_RX.values()) if t[0]}
    assert used == set(CODES), (used ^ set(CODES))

    data = build(args.seed, valid)
    args.out.mkdir(parents=True, exist_ok=True)
    notes = [n for rows in data.values() for n, _ in rows]
    assert len(notes) == len(set(notes)), "duplicate note text"
    for split, rows in data.items():
        with open(args.out / f"{split}.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for note, codes in rows:
                f.write(json.dumps(to_record(note, codes), ensure_ascii=False) + "\n")

    print(f"wrote {', '.join(f'{s}.jsonl' for s, _ in SPLITS)} to {args.out} (seed={args.seed})")
    print(f"{'code':<8}  " + "  ".join(f"{s:>5}" for s, _ in SPLITS) + "  title")
    for code in sorted(CODES):
        cells = [sum(code in c for _, c in data[s]) for s, _ in SPLITS]
        print(f"{code:<8}  " + "  ".join(f"{x:>5}" for x in cells) + f"  {CODES[code][:60]}")
    for split, rows in data.items():
        words = [n_words(n) for n, _ in rows]
        ncodes = Counter(len(c) for _, c in rows)
        print(f"{split}: {len(rows)} rows, words {min(words)}-{max(words)} (mean {sum(words) / len(words):.1f}), "
              f"codes per row {dict(sorted(ncodes.items()))}")


if __name__ == "__main__":
    main()
