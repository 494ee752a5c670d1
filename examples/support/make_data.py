#!/usr/bin/env python3
"""Generate the synthetic "Voltcart" customer-support dataset used by tunesmith examples.

Every ticket is produced from hand-written templates that are slot-filled with
products, order numbers, amounts, dates, names and so on, then passed through a
light "tone" and "noise" layer (greetings, sign-offs, angry or terse phrasing,
lowercase, missing punctuation, small typos).  The assistant turn is always

    category: <label>
    reply: <one short sentence>

Output: train.jsonl (320 rows), eval.jsonl (80 rows), test.jsonl (80 rows).
No ticket text occurs twice, within or across files.  Near-duplicates are
rejected while generating: a row whose whole conversation text is >= 0.75
similar (Jaccard of 5-character shingles, as `tunesmith check` measures it) to
a row of the same split, or a held-out (eval/test) row whose prompt is >= 0.75
similar to a prompt of another split, is drawn again.  Tickets never contain
e-mail addresses or anything else `tunesmith check` reports as PII, so the data
passes `tunesmith check --strict`.  Python 3.11 stdlib only; the output depends
only on --seed.

Usage: python examples/support/make_data.py [--seed 0] [--out examples/support]
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from pathlib import Path

LABELS = ["billing", "shipping", "returns", "technical", "account", "product_question"]
SPLITS = [("train", 320), ("eval", 80), ("test", 80)]

TICKET_WORDS = (15, 60)
REPLY_WORDS = (8, 20)

# --------------------------------------------------------------------------
# Slot vocabularies
# --------------------------------------------------------------------------

# name, family, tags, (min price, max price), plural
PRODUCTS = [
    ("wireless earbuds", "audio", "bt battery charge audio app firmware power pairs outdoor usbc", (39, 249), True),
    ("noise-cancelling headphones", "audio", "bt battery charge audio app firmware power pairs usbc", (89, 399), True),
    ("over-ear headphones", "audio", "bt battery charge audio power pairs usbc", (49, 299), True),
    ("bluetooth speaker", "audio", "bt battery charge audio power pairs outdoor usbc", (29, 199), False),
    ("soundbar", "audio", "bt audio power firmware wifi app pairs iot", (129, 599), False),
    ("smart watch", "wearable", "bt battery charge screen touch app firmware power storage pairs outdoor beginner usbc", (149, 499), False),
    ("fitness tracker", "wearable", "bt battery charge screen touch app firmware power pairs outdoor beginner usbc", (49, 179), False),
    ("laptop", "computer", "battery charge screen wifi bt power firmware computer storage beginner", (499, 1899), False),
    ("gaming laptop", "computer", "battery charge screen wifi bt power firmware computer storage", (999, 2799), False),
    ("2-in-1 laptop", "computer", "battery charge screen touch wifi bt power firmware computer storage", (599, 1499), False),
    ("tablet", "mobile", "battery charge screen touch wifi bt power firmware storage beginner", (199, 1099), False),
    ("smartphone", "mobile", "battery charge screen touch wifi bt power firmware storage beginner usbc", (299, 1299), False),
    ("e-reader", "mobile", "battery charge screen touch wifi power firmware storage beginner usbc", (99, 279), False),
    ("4K monitor", "monitor", "screen display power firmware", (249, 899), False),
    ("27-inch monitor", "monitor", "screen display power", (179, 499), False),
    ("ultrawide monitor", "monitor", "screen display power firmware", (349, 1199), False),
    ("55-inch 4K TV", "tv", "screen power wifi firmware app audio", (399, 1299), False),
    ("phone charger", "charging", "charger", (15, 59), False),
    ("wireless charging pad", "charging", "charger power", (19, 79), False),
    ("power bank", "charging", "charger battery charge power usbc", (25, 129), False),
    ("USB-C hub", "accessory", "hub", (29, 99), False),
    ("mechanical keyboard", "peripheral", "bt battery charge power pairs beginner usbc", (69, 229), False),
    ("wireless mouse", "peripheral", "bt battery power pairs", (19, 129), False),
    ("webcam", "peripheral", "power", (39, 199), False),
    ("game controller", "peripheral", "bt battery charge firmware power pairs beginner usbc", (49, 179), False),
    ("robot vacuum", "home", "wifi app battery charge firmware power iot", (199, 899), False),
    ("smart doorbell", "home", "wifi app firmware power iot", (79, 249), False),
    ("Wi-Fi router", "home", "power firmware app", (79, 399), False),
    ("security camera", "home", "wifi app firmware power iot", (49, 249), False),
    ("action camera", "camera", "wifi app battery charge firmware screen power storage outdoor beginner usbc", (149, 499), False),
    ("drone", "camera", "wifi app battery charge firmware power outdoor beginner", (299, 1499), False),
    ("external SSD", "storage", "drive", (59, 299), False),
]
BRANDS = ["Kestrel", "Auralis", "Norvik", "Lumeo", "Zephyra", "Quanta", "Brightline", "Orbix", "Tessel", "Vanta"]

FIRST_NAMES = [
    "Maria", "James", "Aisha", "Tom", "Priya", "Lukas", "Sofia", "Daniel", "Mei", "Carlos", "Fatima",
    "Ethan", "Olga", "Kwame", "Hannah", "Ravi", "Chloe", "Mateo", "Yuki", "Grace", "Omar", "Emma",
    "Jonas", "Leila", "Ben", "Ana", "Sam", "Ingrid", "Diego", "Nora", "Kevin", "Amara", "Pavel", "Zoe",
]
LAST_INITIALS = "ABCDEFGHJKLMNPRSTVW"
# Tickets name the kind of e-mail address ("my Gmail address"), never an address itself, so the data holds
# nothing `tunesmith check` reports as PII.
MAIL_PROVIDERS = ["Gmail", "Outlook", "Yahoo", "iCloud", "Proton", "Hotmail"]
CARRIERS = ["UPS", "FedEx", "DHL", "USPS"]
CITIES = ["Memphis", "Louisville", "Chicago", "Denver", "Phoenix", "Newark", "Dallas", "Atlanta", "Reno", "Columbus"]
COUNTRIES = ["Canada", "Mexico", "Ireland", "Norway", "Australia", "Iceland", "Puerto Rico", "Switzerland"]
STREETS = ["Maple St", "Oak Ave", "Lakeview Dr", "Pine Rd", "Elm St", "Harbor Blvd", "Cedar Ln", "Hillcrest Rd"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
# per product family: what "is it compatible with ..." and "which is better for ..." refer to
PHONES = ["an iPhone 13", "my Samsung Galaxy", "a Pixel phone", "an iPhone 15 Pro"]
COMPUTERS = ["a MacBook Air", "Windows 11", "a Chromebook", "Linux", "my Dell XPS", "macOS Sonoma"]
PLATFORMS = {
    "audio": PHONES + ["a MacBook Air", "a PS5", "my Windows laptop"],
    "wearable": PHONES,
    "computer": ["Linux", "Windows 11", "my old docking station", "an external GPU"],
    "mobile": ["Google Play apps", "an Apple Pencil", "my Bluetooth keyboard", "my car's Android Auto"],
    "monitor": ["a MacBook Air", "a PS5", "an Xbox Series X", "my Windows laptop", "a Nintendo Switch dock"],
    "tv": ["a PS5", "an Xbox Series X", "Apple AirPlay", "Google Cast", "my old soundbar"],
    "charging": PHONES + ["an iPad Pro", "my Nintendo Switch"],
    "accessory": COMPUTERS + ["an iPad Pro"],
    "peripheral": COMPUTERS + ["a PS5", "an iPad Pro"],
    "home": PHONES + ["Alexa", "Google Home", "Apple Home"],
    "camera": PHONES + ["a MacBook Air", "Windows 11"],
    "storage": COMPUTERS + ["a PS5", "an Xbox Series X", "an iPad Pro"],
}
USES = {
    "audio": ["running", "the gym", "my daily commute", "flights", "video calls", "music at home"],
    "wearable": ["running", "swimming", "sleep tracking", "the gym", "cycling"],
    "computer": ["gaming", "photo editing", "school", "programming", "video editing", "office work"],
    "mobile": ["reading", "school", "travel", "taking photos", "streaming video"],
    "monitor": ["gaming", "photo editing", "office work", "coding", "video editing"],
    "tv": ["gaming", "watching movies", "sports", "a bright living room"],
    "charging": ["travel", "camping", "my daily commute", "charging two devices"],
    "accessory": ["a home office", "travel", "a dual-monitor setup"],
    "peripheral": ["gaming", "office work", "video calls", "streaming"],
    "home": ["a small apartment", "a house with pets", "a two-story house", "a rental"],
    "camera": ["travel", "mountain biking", "vlogging", "real estate photos", "beginners"],
    "storage": ["video editing", "backups", "console games", "photo archives"],
}
RELATIVES = ["son", "daughter", "dad", "mom", "grandma", "nephew", "niece", "partner", "brother", "sister"]
COLORS = ["white", "navy blue", "silver", "rose gold", "green", "space gray", "red"]
ERROR_CODES = ["E-102", "E-217", "0x80070057", "ERR_04", "E31", "code 43", "E-550", "0xC000021A"]
PROMO_WORDS = ["SPRING", "VOLT", "SAVE", "WELCOME", "BLACKFRI", "CYBER", "SUMMER", "STUDENT"]

# --------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------
# Each template is T(ticket text, [replies written for it], needed product tags).
# "[a|b|c]" picks one option; "[a|]" makes "a" optional.  {slots} are filled from
# the table built in make_slots(); agreement slots ({it}, {is}, {s}, ...) follow
# {product} (singular or plural).  A reply is drawn from the template's own
# replies (75%) or the label's GENERIC_REPLIES, using only slots the ticket shows.


def T(text, replies=(), needs="", generic=True, calm=False):
    """generic=False: only the template's own replies fit (no label-wide generic reply).
    calm=True: a plain request or question, never given the angry tone."""
    return {"text": text, "replies": list(replies), "needs": set(needs.split()), "generic": generic, "calm": calm}


TEMPLATES = {
    "billing": [
        T("I was charged twice for order {order}. My [card statement|bank app] shows two payments of {amount} on {date}. [Can you refund the duplicate?|Please reverse one of them.]",
          ["Sorry about that; the duplicate {amount} charge on order {order} will be refunded within five days.",
           "We've confirmed the double charge and started a refund for the duplicate payment."]),
        T("There's a double payment on my [account|credit card] for the {product} I bought. Same amount, {amount}, taken twice [within a minute|on the same day]. [What happened?|Please fix this.]",
          ["Sorry for the double payment; the second {amount} charge will be refunded to your card."]),
        T("The invoice for {order} shows {amount_more} but the checkout page said {amount}. Which one is correct, and can you [fix|correct|reissue] the invoice?",
          ["We'll reissue the invoice for order {order} with the correct amount today.",
           "Our billing team will correct the invoice for order {order} and email it to you."]),
        T("My card ending in {last4} keeps getting declined at checkout even though it works [everywhere else|fine on other sites]. Is something wrong with your payment system?",
          ["Sorry for the trouble; we're checking why your card was declined and will email you.",
           "We're checking our payment logs for declines on the card ending in {last4}."]),
        T("I [used|entered] the promo code {code} but the discount was not applied to order {order}. I [paid full price|ended up paying] {amount}. [Please adjust it.|Can you refund the difference?]",
          ["We'll apply the {code} discount to order {order} and refund the difference.",
           "Thanks for flagging this; we'll honor the code and refund the discount within three days."]),
        T("I see a charge of {amount} from VOLTCART on {date} that I don't recognize. I haven't ordered anything [in months|recently]. What is this [payment|charge] for?",
          ["We'll look up the {amount} charge and email you the matching order details today.",
           "Please reply with the card's last four digits so we can trace that {amount} charge."]),
        T("I need a proper VAT invoice with my company name on it for order {order}. The [receipt|confirmation email] isn't [enough|accepted] for my expense report.",
          ["We'll email you a VAT invoice with your company details for order {order} today."], generic=False, calm=True),
        T("The price of the {product} dropped to {amount_less} [two days|a few days|a week] after I bought it for {amount}. Do you offer a price adjustment [for that|on recent purchases]?",
          ["Purchases within 14 days qualify, so we'll refund the price difference on your {product}.",
           "Good news, you're within our price-match window, so we'll refund the difference."]),
        T("How do I change the payment method on order {order}? I want to pay with [PayPal|a different card|my gift card] instead of the card I entered.",
          ["You can change the payment for order {order} under Orders until it ships."], generic=False, calm=True),
        T("My order {order} was cancelled but the {amount} is still [pending|showing] on my credit card. When will [that hold|the money] be released?",
          ["The {amount} hold for order {order} has been voided and should disappear within five days."]),
        T("I was charged {tax} in sales tax on {order}, but I'm ordering for a tax-exempt [school|nonprofit|charity]. Can you remove the tax? I can send the certificate.",
          ["Please email your tax-exempt certificate and we'll refund the sales tax charged on order {order}."]),
        T("Your site says the installment plan is 0% interest, but I was billed an extra {fee} fee this month for my {product}. Why [is that|was I charged]?",
          ["We'll review your installment plan and refund the {fee} fee if it was a mistake."]),
        T("I got charged for expedited delivery on {order} but I [selected|picked] the free standard option at checkout. Please refund the {fee} difference.",
          ["Sorry for the mistake; we'll refund the {fee} delivery charge on order {order}."]),
        T("[My|The] gift card balance isn't being applied at checkout. It says I have {amount} left but the total [stays the same|doesn't change]. [Haven't placed the order yet.|Can't finish my order.]",
          ["Please send us the gift card number and we'll apply the {amount} balance manually."], generic=False),
        T("The payment [went through|was taken] on my bank's side ({amount}) but your site said the transaction failed and no order was created. Did you [take my money|keep the payment]?",
          ["We'll find the {amount} payment and either create your order or refund it."]),
        T("Why does my statement show {amount_more} when the order total for {order} was only {amount}? [Looks like I was overcharged.|I think there's an overcharge.]",
          ["Sorry for the overcharge; we're reviewing order {order} and will refund any amount above {amount}."]),
        T("Can I get an itemized receipt for the {product} I bought on {date}? [My employer needs it for reimbursement.|I need it for my taxes.]",
          ["Sure, we'll email an itemized receipt for your {product} purchase today."], generic=False, calm=True),
    ],
    "shipping": [
        T("Where is my order {order}? It was supposed to arrive [on {date}|by {date}] and the tracking hasn't updated in {days} days.",
          ["Sorry for the delay; we've opened a carrier trace for order {order} and will update you."]),
        T("The tracking for {order} says delivered but there's nothing at my door [or in the mailroom|or with my neighbors]. Can you check with {carrier}?",
          ["We've opened a missing-package claim with {carrier} for order {order} and will update you soon."]),
        T("I placed order {order} [yesterday|this morning|last night] and need to change the delivery address to {address}. [It hasn't shipped yet I think.|Is it too late?]",
          ["If order {order} hasn't shipped we can change the address; we'll confirm by email."]),
        T("Do you ship to {country}? I'd like to order [a|the] {product_bare} but checkout [won't accept|keeps rejecting] my address.",
          ["We ship some items to {country}; we'll check your address and email your delivery options."],
          generic=False, calm=True),
        T("My {product} {has} been stuck [at|in] the {city} [facility|sorting center|hub] since {date}. [Is it lost?|Is it ever going to move?]",
          ["Sorry for the hold-up; we've asked the carrier to locate your {product} for you."]),
        T("I paid for express delivery on {order} and it's now day {days}. Still no package. When will it [actually get here|arrive]?",
          ["Sorry it's late; we're chasing the carrier and will refund the express fee on order {order}."]),
        T("Only part of my order arrived. The {product} came but the {product2} [isn't in the box|is missing] and there's no second tracking number.",
          ["Some items ship separately; we'll email you the tracking for your {product2} shortly."]),
        T("Can I [pick up|collect] order {order} from a [parcel locker|pickup point] instead of home delivery? I'm [away|at work] all week.",
          ["Yes, we can send order {order} to a nearby pickup point instead."], calm=True),
        T("How long does standard delivery usually take to {city}? [Ordering|I want to order] {a_product} as a birthday gift for {date}.",
          ["Standard delivery to {city} takes three to five business days, so you have time.",
           "Most orders reach {city} within five business days; checkout shows the exact date."],
          generic=False, calm=True),
        T("The courier left a note saying they couldn't deliver {order} [today|yesterday]. How do I reschedule the delivery?",
          ["You can reschedule using the tracking link, or reply with a date and we'll arrange it."], calm=True),
        T("my order {order} still says processing after {days} days. when is it actually going to ship[??|?|]",
          ["Sorry for the wait; order {order} is being packed and should ship tomorrow."]),
        T("The tracking number you emailed for {order} doesn't work on the {carrier} [site|app]. It just says [not found|no information available].",
          ["Tracking can take a day to activate, but we'll check with {carrier} and resend it."]),
        T("Can you hold [my package|order] {order} until {date}? I'll be traveling and don't want [it sitting on my porch|it left outside].",
          ["We'll ask the carrier to hold order {order} at the depot until {date}."], calm=True),
        T("The package for {order} [was sent|is going] to my old address[ on {street}|]. I updated it before checkout, I'm sure. How do we redirect it?",
          ["Sorry about that; we've asked the carrier to redirect order {order} to your new address."]),
        T("Is there any way to upgrade order {order} to overnight delivery? I need the {product} before {date}.",
          ["If it hasn't shipped we can upgrade order {order} to overnight for a small fee."], calm=True),
        T("The box for {order} arrived [soaking wet|completely crushed] and the carrier [just dumped|threw] it on the driveway. Everything inside [seems OK|works], but can you [report|complain to] the courier?",
          ["Thanks for telling us; we've reported the delivery of order {order} to the carrier.",
           "Sorry about the careless delivery; we've filed a complaint with the courier about order {order}."],
          generic=False),
    ],
    "returns": [
        T("I'd like to return the {product} from order {order}. {It} [work{s} fine|{is} fine], I just don't need {it_obj} anymore. How do I get a return label?",
          ["Start a return for order {order} under Orders and we'll email a prepaid label.",
           "No problem; we've emailed a return label for your {product}."], calm=True),
        T("The {product} arrived with a [cracked|dented] [casing|housing] [right out of the box|straight out of the packaging]. I want to send {it_obj} back for a replacement.",
          ["Sorry it arrived damaged; we'll email a return label and ship a replacement."]),
        T("I sent back the {product} on {date} and {carrier} shows you received {it_obj}. When will my refund be processed?",
          ["Returns are processed within five business days, and we'll email you once refunded."], generic=False),
        T("Can I exchange the {product} for a different color? [I'd prefer {color}.|] Order {order}, the box is still sealed.",
          ["Yes, sealed items can be exchanged; we'll email a return label for order {order}."], calm=True),
        T("Bought {a_product} {days} days ago. Is it still within the return window? The box is opened but everything is [there|included].",
          ["Yes, complete items can be returned within 30 days, even if opened."], calm=True),
        T("The return label link in my email for {order} [has expired|doesn't work anymore]. Can you send me a new one?",
          ["Sorry about that; we've emailed you a new return label for order {order}."]),
        T("Wrong item! I ordered {a_product} and got {a_product2} instead. How do I send {it2_obj} back and get what I actually ordered?",
          ["Sorry for the mix-up; we'll email a return label and ship your {product} right away."]),
        T("Do I have to pay [the postage|for the return shipping] if I send back the {product}? {It} [{is}n't|{is} just not] what I expected.",
          ["Returns are free within 30 days; start one in your account to get the label."], calm=True),
        T("I returned the {product} [two weeks|ten days] ago but only got {amount_less} back instead of {amount}. Was a restocking fee taken off my return?",
          ["We'll review your return and refund any amount that was deducted by mistake."], generic=False),
        T("Is it possible to return a gift? My {relative} bought me {a_product} and I already have one. I don't have a receipt, only the order number {order}.",
          ["Yes, gifts can be returned using order {order}, and you'll get store credit."], generic=False, calm=True),
        T("The {product} stopped working after [three days|a week]. I don't want to troubleshoot {it_obj}, I just want to return {it_obj} for a full refund.",
          ["Sorry about that; it's within 30 days, so we'll email a return label for a refund."]),
        T("I started a return for {order} on your site but it's been stuck on \"pending approval\" for {days} days. [Can someone look at it?|What's going on?]",
          ["Sorry for the delay; the return for order {order} is approved and the label is emailed."], generic=False),
        T("Can I drop off my return for the {product} at a [store|collection point] instead of [mailing it|posting it]? [There's one near my office.|It's heavy.]",
          ["Yes, bring the QR code from your return email to any drop-off location."], calm=True),
        T("I want to return just one item from order {order}, the {product}, and keep the rest. how do i do that",
          ["Just select the {product} when you start a return for order {order}."], calm=True),
        T("I accidentally ordered the {product} twice[ and never opened the second box|]. Please tell me how to send the extra one back.",
          ["No problem; we'll email a return label for the extra {product}."], calm=True),
        T("My refund for the returned {product} ({order}) still hasn't shown up. Your warehouse confirmed receipt on {date}.",
          ["Sorry for the wait; the refund for order {order} was issued today."], generic=False),
    ],
    "technical": [
        T("My {product} won't pair with my phone over Bluetooth. {It} show{s} up in the list but [fail{s}|time{s} out] every time. [Tried restarting both.|Already restarted everything.]",
          ["Hold the power button for ten seconds to reset pairing, then pair again."],
          "pairs"),
        T("The battery on my {product} drains from full to zero in about {hours} hours even when I'm not using {it_obj}. Any settings I should check?",
          ["Please update the firmware; it fixes a known battery drain bug."],
          "battery"),
        T("My {product} show{s} flickering lines across the screen after waking from sleep. Is there a driver or firmware fix for this?",
          ["Please install the latest firmware, which fixes flickering after sleep on most units."],
          "screen"),
        T("The {product} won't turn on at all. No lights, [nothing|no sound]. I've tried a different outlet and [cable|charger] already.",
          ["Hold the power button for 20 seconds; if nothing happens, we'll arrange a repair."],
          "power"),
        T("The Voltcart Connect app won't detect my {product}. It just says \"searching for device\" forever. [Phone is updated.|Location is on.]",
          ["Please allow Bluetooth and location for the app, then restart the {product}."],
          "app"),
        T("The firmware update for my {product} failed halfway and now {it} [{is} stuck on the logo|won't boot past the logo]. How do I recover {it_obj}?",
          ["Hold power and volume for 15 seconds to enter recovery mode, then reinstall the firmware."],
          "firmware"),
        T("my {product} stopped charging. [left it|plugged in] overnight and still at 0%. tried two cables and two adapters",
          ["Please clean the charging port gently; if it still won't charge, we'll arrange a repair."],
          "charge"),
        T("My {product} keep{s} disconnecting every few minutes from my laptop. Audio cuts out, then comes back[. Really annoying.|.|]",
          ["Please update the firmware and remove old paired devices to stop the disconnects."],
          "bt audio"),
        T("My {product} get{s} really hot after ten minutes of use[, almost too hot to touch|]. Is there a setting that fixes this?",
          ["Please update the firmware and keep the vents clear; if it still overheats, contact us."],
          "power"),
        T("My laptop doesn't detect the {product} over HDMI, just [shows \"no signal\"|a black screen]. [It works with|Tried] my old [screen|monitor] and the cable is fine.",
          ["Please select the HDMI input in the monitor menu and update your graphics driver."],
          "display"),
        T("I can't get my {product} to connect to my 5GHz Wi-Fi. {It} only see{s} the 2.4GHz network. How do I set {it_obj} up?",
          ["This model only supports 2.4GHz, so please connect it to your 2.4GHz network."],
          "iot"),
        T("How do I factory reset the {product}? The manual is vague and the buttons don't do what it says[. Very confusing.|.]",
          ["Hold the power and reset buttons for fifteen seconds until the light blinks."],
          "power", calm=True),
        T("There's a constant buzzing [sound|noise] from the {product} even when nothing is playing. [Left side only.|Gets worse at low volume.]",
          ["Please update the firmware; if the buzzing continues, we'll replace the unit."],
          "audio"),
        T("The touchscreen on my {product} doesn't respond in the bottom corner. [Calibration didn't help.|Restarting didn't help.]",
          ["Please remove any screen protector; if the corner still fails, we'll arrange a repair."],
          "touch"),
        T("After the latest update my {product} restart{s} randomly, sometimes twice an hour. [I see|It shows] error {errcode} [sometimes|afterwards].",
          ["Please roll back the last update while our engineers investigate error {errcode}."],
          "computer"),
        T("I'm getting error {errcode} when I try to set up the {product}. What does that mean and how do I get past it?",
          ["Error {errcode} usually means a connection failure, so please restart your router and retry setup."],
          "firmware"),
        T("My computer doesn't recognize the {product} when I plug it in. [It doesn't show up in Finder or Explorer.|Nothing shows up.] [Tried different ports.|Cable seems fine.]",
          ["Please check Disk Management or Disk Utility; the drive may just need formatting."],
          "drive", generic=False),
        T("The {product} only charges my phone really slowly, like [10%|5%] an hour. [Is mine faulty?|Is that normal?] [The phone is fairly new.|Same with every cable.]",
          ["Please use the original cable and remove thick phone cases, which slow charging."],
          "charger", generic=False),
        T("Only one of the ports on my {product} works. The others don't detect my keyboard or [drive|mouse]. [Driver issue?|Any ideas?]",
          ["Please plug in the hub's power adapter, since the extra ports need more power."],
          "hub", generic=False),
    ],
    "account": [
        T("I can't log in to my Voltcart account. It says my password is wrong even after I [reset it twice|changed it this morning].",
          ["Please clear your browser cookies and try again, or we can unlock your account."]),
        T("The password reset email never arrives. I [checked spam|looked in junk] [twice|already]. [It should go to|I use] my {mail} address.",
          ["We've resent the reset link to your {mail} address; please allow ten minutes."]),
        T("Please change the email on my account from my old {mail} address to my [new |]{mail2} address. I no longer have access to the old one.",
          ["We'll send a code to your {mail2} address to verify it before updating your account."]),
        T("My account got locked after too many login attempts. How long until I can [try again|log back in]?",
          ["Accounts unlock after 30 minutes, or you can reset your password right away."]),
        T("I'd like to [delete|close] my Voltcart account and [remove|erase] all my personal data. How do I do that?",
          ["You can request deletion under Account Settings > Privacy, and we'll confirm by email."], calm=True),
        T("I [lost|broke] my phone and can't get the two-factor code to sign in. How can I get back into my account?",
          ["Please use a backup code, or reply with an order number so we can reset 2FA."]),
        T("I just got an alert about a login from {city} that wasn't me. I think [my account was hacked|someone has my password]. What should I do?",
          ["Please reset your password now; we've signed out all sessions on your account."]),
        T("How do I [unsubscribe from|stop getting] the marketing emails? I get [three|several] a day. I want to keep my account though.",
          ["You can turn off marketing emails under Account Settings > Notifications without affecting your account."], calm=True),
        T("I have two accounts, one under my {mail} address and one under my {mail2} address. Can you merge them so all my order history is in one place?",
          ["We can merge your accounts after verifying both email addresses; we'll send confirmation links shortly."], calm=True),
        T("My order history is empty when I log in, but I've definitely [ordered before|placed orders]. Did my account get reset?",
          ["Your orders may be under another email; please share an order number so we can check."]),
        T("I tried to [sign up|register] with my {mail} address but it says [it's|that email is] already registered. I've never made an account with you.",
          ["Please try a password reset for your {mail} address, and we'll secure the account if needed."]),
        T("How do I change the name on my profile? It still shows my [old last name|maiden name] [after the wedding|and I can't edit it].",
          ["You can edit your name under Account Settings > Profile at any time."], calm=True),
        T("Can't sign in with Google anymore, it just loops back to the login page. [Tried two browsers.|Same on my phone.]",
          ["Please sign in with your email and password while we fix Google sign-in."]),
        T("Please turn off two-factor authentication on my account, I'd rather just use a password.[ It's a hassle every time.|]",
          ["You can turn off two-factor under Account Settings > Security, but we recommend keeping it."], calm=True),
        T("My reward points [disappeared|are gone] from my account. I had about {points} points last week and now it shows zero.",
          ["Sorry about that; we're checking your points history and will restore missing points."]),
        T("How can I download a copy of all the personal data you [have|store] on me? [This is a GDPR request.|Just curious what you keep.]",
          ["You can request a data export under Account Settings > Privacy."], calm=True),
    ],
    "product_question": [
        T("{Is} the {product_bare} compatible with {platform}? I want to make sure before I [buy|order] {it_obj}.",
          ["Yes, the {product_bare} work{s} with {platform}; see the product page for details."]),
        T("What's the [real |]difference between the {product_bare} and the {product2_bare}? Trying to decide which one to get for {use}.",
          ["For {use}, the {product_bare} {is} usually the better pick; see the comparison table."],
          "hasfam"),
        T("{Does} the {product_bare} come with a charger in the box or do I need to buy one separately?",
          ["The {product_bare} come{s} with a USB-C cable, but the wall adapter is sold separately."],
          "usbc"),
        T("When will the {product_bare} be back in stock? {It} {has} been sold out for [weeks|ages][ and I really want one|].",
          ["We expect the {product_bare} back in two to three weeks; tap Notify Me for an alert."]),
        T("How long is the warranty on the {product_bare}, and does it cover accidental damage[ like drops|]?",
          ["The {product_bare} {has} a two-year warranty; accidental damage needs our protection plan."]),
        T("{Is} the {product_bare} waterproof? I'd [use|take] {it_obj} [outdoors|on hikes|at the beach] and [sometimes|probably] in the rain.",
          ["The {product_bare} {is} rated IPX4, so rain is fine but don't submerge {it_obj}."],
          "outdoor"),
        T("What's the battery life of the {product_bare} in real use? The listing just says \"all day\"[, which is vague|].",
          ["In our tests the {product_bare} last{s} about ten hours of mixed use."],
          "battery"),
        T("{Does} the {product_bare} support fast charging? [I travel a lot|I'm always on the go] and don't have much time to charge.",
          ["Yes, the {product_bare} support{s} fast charging, reaching about half in thirty minutes."],
          "charge"),
        T("Can the {product_bare} be used in Europe? Will {it_obj} work with 230V power or do I need a converter?",
          ["The {product_bare} support{s} 100-240V, so a simple plug adapter is enough."],
          "power"),
        T("Which colors {does} the {product_bare} come in? The page only shows black and I [was hoping for|wanted] {color}.",
          ["The {product_bare} come{s} in black and {color}; pick the color on the product page."]),
        T("{Is} the {product_bare} you sell the newest model or last year's version? [The listing doesn't say.|Want to be sure before buying.]",
          ["We sell the current {product_bare} model; the release year is under specifications."]),
        T("Do I need a subscription to use all the features of the {product_bare}, or is everything included [in the price|once I buy it]?",
          ["All core features are free; the optional subscription only adds cloud storage."],
          "app"),
        T("{Is} the {product_bare} on your site brand new or refurbished? The price seems [low|too good] compared to other stores.",
          ["Our {product_bare} stock is brand new, and refurbished items are always clearly labeled."]),
        T("What ports does the {product_bare} have? I need at least two USB-A ports and HDMI [for my setup|for work].",
          ["The {product_bare} {has} two USB-C ports, one USB-A port and HDMI."],
          "computer"),
        T("How heavy {is} the {product_bare}? I'm planning to [carry|take] {it_obj} every day [to work|to school|on my commute|when I travel].",
          ["The {product_bare} {is} light enough to carry daily; the exact weight is in the specs."],
          "battery"),
        T("Would the {product_bare} be good for a beginner? I'm buying {it_obj} for my {relative} [for {use}|as a gift].",
          ["Yes, the {product_bare} {is} beginner friendly, with a simple setup guide included."],
          "beginner"),
        T("How much storage does the {product_bare} [have|come with], and can I expand it [with a memory card|later]?",
          ["The {product_bare} come{s} in several storage sizes; the product page lists expansion options."],
          "storage"),
    ],
}

# Generic replies that fit any ticket of the label.
GENERIC_REPLIES = {
    "billing": [
        "Our billing team will review the charges and email you within two business days.",
        "Sorry about that; we're reviewing the payment on order {order} and will fix any error.",
        "Sorry for the payment trouble; any amount owed will go back to your card.",
        "Thanks for flagging this; we've sent order {order} to billing and will follow up.",
    ],
    "shipping": [
        "Our delivery team is checking order {order} and will update you within 24 hours.",
        "Sorry for the trouble; we're checking with the carrier and will email you an update.",
        "We've contacted the carrier about order {order} and will share an updated delivery estimate soon.",
    ],
    "returns": [
        "You can start the return for order {order} in your account.",
        "Sorry the {product} didn't work out; we'll email you the return steps today.",
        "Happy to help; we'll email you a prepaid return label and instructions.",
    ],
    "technical": [
        "Sorry about that; a technician will email you troubleshooting steps for your {product} today.",
        "Thanks for the details; our tech team will email fix steps for your {product}.",
        "Sorry for the trouble; our support engineers will look into this and email you shortly.",
    ],
    "account": [
        "Our account team will verify your identity by email and help you right away.",
        "We'll send a secure link to the email on file so you can update your account.",
        "For security, please reply from the email on your account and we'll handle it.",
    ],
    "product_question": [
        "Great question; the full {product_bare} specs are on its product page under Details.",
        "Thanks for asking; our product team will email you the {product_bare} details today.",
        "Happy to help; a product specialist can also answer this via chat on the {product_bare} page.",
    ],
}

# --------------------------------------------------------------------------
# Tone and noise
# --------------------------------------------------------------------------

GREETINGS = ["Hi,", "Hello,", "Hi there,", "Hey,", "Hello Voltcart team,", "Good morning,", "Dear Voltcart support,",
             "Hi support,", "Hey Voltcart,", "Good afternoon,"]
NAMED_SIGNOFFS = ["Thanks, {name}", "Regards, {name}", "- {name}", "Cheers, {name}", "Best, {name} {initial}.",
                  "Thank you, {name}", "{name}", "Kind regards, {name} {initial}."]
POLITE_SIGNOFFS = ["Regards, {name}", "- {name}", "Best, {name} {initial}.", "{name}", "Kind regards, {name} {initial}.",
                   "Best wishes, {name}"]
SIGNOFFS = NAMED_SIGNOFFS + ["Thanks!", "Thanks in advance.", "Thank you."]
POLITE = ["Thank you in advance!", "Appreciate any help.", "Thanks so much for your help.", "Sorry to bother you.",
          "Any help would be great.", "Thanks for your time."]
ANGRY_PRE = ["This is the second time I'm writing about this.", "Honestly really frustrated right now.",
             "I've been a customer for years and this is unacceptable.", "Not happy.", "Seriously?"]
ANGRY_POST = ["Fix this ASAP.", "I expect a response today.", "Very disappointed.", "This is ridiculous.",
              "Considering never ordering again.", "Please sort this out quickly!!"]
SLANG = {"you": "u", "please": "pls", "thanks": "thx", "because": "bc", "are": "r", "okay": "ok"}


def add_typo(rng: random.Random, word: str) -> str:
    core = re.match(r"^([A-Za-z]+)(.*)$", word)
    if not core or len(core.group(1)) < 5:
        return word
    w, tail = core.group(1), core.group(2)
    i = rng.randrange(1, len(w) - 2)
    kind = rng.randrange(3)
    if kind == 0:  # swap adjacent letters
        w = w[:i] + w[i + 1] + w[i] + w[i + 2:]
    elif kind == 1:  # drop a letter
        w = w[:i] + w[i + 1:]
    else:  # double a letter
        w = w[:i] + w[i] + w[i:]
    return w + tail


def apply_noise(rng: random.Random, text: str, terse: bool) -> str:
    if rng.random() < 0.18:
        words = text.split(" ")
        candidates = [k for k, w in enumerate(words) if re.fullmatch(r"[A-Za-z]{5,}[.,!?]?", w)]
        for k in rng.sample(candidates, min(len(candidates), rng.choice([1, 1, 2]))):
            words[k] = add_typo(rng, words[k])
        text = " ".join(words)
    if rng.random() < (0.35 if terse else 0.08):
        text = re.sub(r"\b(you|please|thanks|because|are|okay)\b",
                      lambda m: SLANG[m.group(1)] if rng.random() < 0.7 else m.group(1), text)
    if rng.random() < (0.5 if terse else 0.1):
        text = text.lower()
    if rng.random() < (0.5 if terse else 0.12):
        text = text.rstrip(".!")
    return text


def apply_tone(rng: random.Random, body: str, slots: dict, calm: bool) -> tuple[str, str]:
    tone = rng.choices(["neutral", "polite", "angry", "terse"], weights=[40, 25, 0 if calm else 20, 15])[0]
    pre, post = [], []
    if tone == "polite":
        if rng.random() < 0.8:
            pre.append(rng.choice(GREETINGS))
        post.append(rng.choice(POLITE))
        if rng.random() < 0.7:
            post.append(rng.choice(POLITE_SIGNOFFS))
    elif tone == "angry":
        if rng.random() < 0.5:
            pre.append(rng.choice(ANGRY_PRE))
        if rng.random() < 0.8:
            post.append(rng.choice(ANGRY_POST))
        if rng.random() < 0.3:
            post.append(rng.choice(["- {name}", "{name}", "{name} {initial}."]))
    elif tone == "neutral":
        if rng.random() < 0.35:
            pre.append(rng.choice(GREETINGS))
        if rng.random() < 0.35:
            post.append(rng.choice(SIGNOFFS))
    text = body
    if pre:
        sep = "\n" if pre[0] in GREETINGS and rng.random() < 0.35 else " "
        text = " ".join(pre) + sep + text
    if post:
        sep = "\n" if rng.random() < 0.25 else " "
        text = text + sep + " ".join(post)
    text = text.format_map(slots)
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" ([?.!,])", r"\1", text).strip()
    text = apply_noise(rng, text, terse=(tone == "terse"))
    return text, tone


# --------------------------------------------------------------------------
# Slot filling
# --------------------------------------------------------------------------

def money(x: float) -> str:
    return f"${x:,.2f}"


FAMILY_SIZE = Counter(p[1] for p in PRODUCTS)


def tags_of(p) -> set:
    tags = set(p[2].split())
    if FAMILY_SIZE[p[1]] > 1:
        tags.add("hasfam")  # has a sibling in its family to be compared or confused with
    return tags


def pick_product(rng: random.Random, needs: set, exclude=None, family=None):
    pool = [p for p in PRODUCTS if needs <= tags_of(p) and p is not exclude]
    if family:
        same = [p for p in pool if p[1] == family]
        if same:
            pool = same
    return rng.choice(pool)


def display_name(rng: random.Random, p) -> str:
    if rng.random() < 0.3:
        return f"{rng.choice(BRANDS)} {rng.choice('ABCMSVXZ')}{rng.randint(2, 9)} {p[0]}"
    return p[0]


def with_article(name: str, plural: bool) -> str:
    if plural:
        return f"a pair of {name}"
    return ("an " if name[0].lower() in "aeiou" or name.startswith("8") else "a ") + name


def make_slots(rng: random.Random, needs: set) -> dict:
    p = pick_product(rng, needs)
    p2 = pick_product(rng, set(), exclude=p, family=p[1])
    name = display_name(rng, p)
    name2 = display_name(rng, p2)
    plural, plural2 = p[4], p2[4]
    lo, hi = p[3]
    price = rng.uniform(lo, hi)
    price = round(price) - rng.choice([0.01, 0.01, 0.05, 0.0])
    first = rng.choice(FIRST_NAMES)
    mail = rng.choice(MAIL_PROVIDERS)
    mail2 = rng.choice([m for m in MAIL_PROVIDERS if m != mail] + ["work", "school"])
    month = rng.choice(MONTHS)
    day = rng.randint(1, 28)
    date = rng.choice([f"{month} {day}", f"{month[:3]} {day}", f"{MONTHS.index(month) + 1}/{day}",
                       f"the {day}{'th' if 10 <= day <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th')}"])
    code = rng.choice(PROMO_WORDS) + str(rng.choice([10, 15, 20, 25, 30]))
    return {
        "product": name, "product_bare": p[0], "a_product": with_article(name, plural),
        "product2": name2, "product2_bare": p2[0], "a_product2": with_article(name2, plural2),
        # agreement with {product}
        "it": "they" if plural else "it", "It": "They" if plural else "It",
        "it_obj": "them" if plural else "it", "it2_obj": "them" if plural2 else "it",
        "is": "are" if plural else "is", "Is": "Are" if plural else "Is",
        "has": "have" if plural else "has", "does": "do" if plural else "does",
        "Does": "Do" if plural else "Does", "s": "" if plural else "s", "es": "" if plural else "es",
        "order": f"VC-{rng.randint(100000, 999999)}",
        "amount": money(price),
        "amount_more": money(price + rng.choice([price, rng.uniform(5, 60)])),
        "amount_less": money(price * rng.uniform(0.7, 0.9)),
        "tax": money(price * rng.uniform(0.05, 0.1)),
        "fee": money(rng.choice([4.99, 7.99, 9.99, 12.99, 14.99, 19.99, 24.99])),
        "date": date,
        "days": str(rng.randint(3, 12)),
        "hours": str(rng.randint(2, 6)),
        "name": first, "initial": rng.choice(LAST_INITIALS),
        "mail": mail, "mail2": mail2,
        "last4": f"{rng.randint(0, 9999):04d}",
        "code": code,
        "carrier": rng.choice(CARRIERS), "city": rng.choice(CITIES), "country": rng.choice(COUNTRIES),
        "street": rng.choice(STREETS),
        "address": f"{rng.randint(12, 9800)} {rng.choice(STREETS)}, Apt {rng.randint(1, 40)}",
        "platform": rng.choice(PLATFORMS[p[1]]), "use": rng.choice(USES[p[1]]), "relative": rng.choice(RELATIVES),
        "color": rng.choice(COLORS), "errcode": rng.choice(ERROR_CODES),
        "points": str(rng.choice([800, 1200, 1500, 2300, 3000, 4500, 5200])),
    }


AGREEMENT = {"it", "It", "it_obj", "it2_obj", "is", "Is", "has", "does", "Does", "s", "es"}


class Recorder(dict):
    """dict that remembers which keys format_map looked up."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.used = set()

    def __getitem__(self, key):
        self.used.add(key)
        return super().__getitem__(key)


CHOICE_RE = re.compile(r"\[([^\[\]]*)\]")


def resolve_choices(rng: random.Random, text: str) -> str:
    return CHOICE_RE.sub(lambda m: rng.choice(m.group(1).split("|")), text)


def slots_in(text: str) -> set:
    return set(re.findall(r"\{(\w+)\}", text))


def n_words(s: str) -> int:
    return len(s.split())


def normalize(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()


# --------------------------------------------------------------------------
# Near-duplicate test (the same measure `tunesmith check` uses, in stdlib)
# --------------------------------------------------------------------------
# Text is whitespace-collapsed and case-folded, cut into 5-character shingles, and two texts are compared by
# the Jaccard similarity of their shingle sets.  `tunesmith check` warns at 0.8 (near_duplicate: whole
# conversation, same file; near_leak: held-out prompt vs training prompt); generation rejects at 0.75.

NEAR = 0.75
SHINGLE = 5
_SPACE = re.compile(r"\s+")


def shingles(text: str, k: int = SHINGLE) -> set:
    text = _SPACE.sub(" ", text).strip().casefold()
    if len(text) <= k:
        return {text}
    return {text[i:i + k] for i in range(len(text) - k + 1)}


def too_similar(a: set, pool: list, threshold: float = NEAR) -> bool:
    """Whether `a` has Jaccard similarity >= threshold with any set in `pool`."""
    na = len(a)
    for b in pool:
        nb = len(b)
        if min(na, nb) < threshold * max(na, nb):  # Jaccard <= min/max: cannot reach the threshold
            continue
        inter = len(a & b)
        if inter >= threshold * (na + nb - inter):
            return True
    return False


def conversation_text(label: str, ticket: str, reply: str) -> str:
    """The row's whole text as `tunesmith check` joins it: "role: content" per message."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in to_record(label, ticket, reply)["messages"])


def prompt_text(ticket: str) -> str:
    """What the model is asked: the messages before the assistant turn."""
    return f"user: {ticket}"


def make_example(rng: random.Random, label: str, tmpl: dict):
    slots = Recorder(make_slots(rng, tmpl["needs"]))
    body = resolve_choices(rng, tmpl["text"])
    body.format_map(slots)  # record slots used by the ticket body itself
    used = set(slots.used)
    ticket, _tone = apply_tone(rng, body, slots, calm=tmpl["calm"] or label == "product_question")
    used |= AGREEMENT
    specific = [r for r in tmpl["replies"] if slots_in(r) <= used]
    generic = [r for r in GENERIC_REPLIES[label] if slots_in(r) <= used] if tmpl["generic"] else []
    pool = specific if specific and (rng.random() < 0.75 or not generic) else generic
    reply = rng.choice(pool).format_map(slots)
    return ticket, reply


def build(seed: int):
    rng = random.Random(seed)
    # Per-split, per-label counts: as even as possible, the remainder spread at random.
    counts = {}
    for split, n in SPLITS:
        base, rem = divmod(n, len(LABELS))
        extra = set(rng.sample(LABELS, rem))
        counts[split] = {lab: base + (lab in extra) for lab in LABELS}

    # Per label, the template of every row (cycling through the templates so every one is used evenly),
    # cut into the splits in order.
    plan = {}
    for label in LABELS:
        need = sum(counts[s][label] for s, _ in SPLITS)
        n_templates = len(TEMPLATES[label])
        order = []
        while len(order) < need:
            block = list(range(n_templates))
            rng.shuffle(block)
            order.extend(block)
        plan[label] = {}
        for split, _ in SPLITS:
            k = counts[split][label]
            plan[label][split], order = order[:k], order[k:]

    seen = set()  # normalized ticket texts, across all splits
    conv_sets = {split: [] for split, _ in SPLITS}  # shingles of accepted rows' conversation texts
    prompt_sets = {split: [] for split, _ in SPLITS}  # shingles of accepted rows' prompts

    def acceptable(split: str, label: str, ticket: str, reply: str) -> bool:
        if not (TICKET_WORDS[0] <= n_words(ticket) <= TICKET_WORDS[1]
                and REPLY_WORDS[0] <= n_words(reply) <= REPLY_WORDS[1]
                and normalize(ticket) not in seen):
            return False
        if too_similar(shingles(conversation_text(label, ticket, reply)), conv_sets[split]):
            return False  # a near-duplicate of a row of the same split
        prompt = shingles(prompt_text(ticket))
        # a held-out prompt nearly the same as a prompt of another split (train, or eval vs test)
        return split == "train" or not any(too_similar(prompt, prompt_sets[o]) for o, _ in SPLITS if o != split)

    out = {}
    for split, _ in SPLITS:  # train first, so held-out rows are checked against all of it
        rows = []
        for label in LABELS:
            templates = TEMPLATES[label]
            for ti in plan[label][split]:
                # the planned template first; should it only give near-duplicates, the label's others
                others = [t for t in range(len(templates)) if t != ti]
                rng.shuffle(others)
                for tj, attempts in [(ti, 200)] + [(t, 50) for t in others]:
                    for _attempt in range(attempts):
                        ticket, reply = make_example(rng, label, templates[tj])
                        if acceptable(split, label, ticket, reply):
                            break
                    else:
                        continue
                    break
                else:
                    raise RuntimeError(f"could not make another {split} row for {label}")
                seen.add(normalize(ticket))
                conv_sets[split].append(shingles(conversation_text(label, ticket, reply)))
                prompt_sets[split].append(shingles(prompt_text(ticket)))
                rows.append((label, ticket, reply))
        rng.shuffle(rows)
        out[split] = rows
    return out


def to_record(label: str, ticket: str, reply: str) -> dict:
    return {"messages": [
        {"role": "user", "content": ticket},
        {"role": "assistant", "content": f"category: {label}\nreply: {reply}"},
    ]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args()

    data = build(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    all_tickets = [t for rows in data.values() for _, t, _ in rows]
    assert len(all_tickets) == len(set(all_tickets)), "duplicate ticket text"
    for split, rows in data.items():
        for lab, n in Counter(lab for lab, _, _ in rows).items():
            assert 0.12 <= n / len(rows) <= 0.22, (split, lab, n)
        with open(args.out / f"{split}.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for lab, t, r in rows:
                f.write(json.dumps(to_record(lab, t, r), ensure_ascii=False) + "\n")

    width = max(len(lab) for lab in LABELS)
    print(f"wrote {', '.join(f'{s}.jsonl' for s, _ in SPLITS)} to {args.out} (seed={args.seed})")
    print(f"{'label':<{width}}  " + "  ".join(f"{s:>5}" for s, _ in SPLITS))
    for lab in LABELS:
        cells = [sum(1 for l, _, _ in data[s] if l == lab) for s, _ in SPLITS]
        print(f"{lab:<{width}}  " + "  ".join(f"{c:>5}" for c in cells))
    print(f"{'total':<{width}}  " + "  ".join(f"{len(data[s]):>5}" for s, _ in SPLITS))


if __name__ == "__main__":
    main()
