"""Word-level helpers shared by BM25, retrieval, citation support, refusal and the eval judge:
tokenising, stemming, stop words, month and number words, term coverage, language."""

from __future__ import annotations

import re
from functools import lru_cache

_WORD = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*", re.UNICODE)

DUTCH_STOP = set("""
aan aangaande aangezien achter af afgelopen al aldaar aldus alhoewel alias alle allebei alleen als
alsnog altijd altoos ander andere anders anderszins behalve behoudens beide beiden ben beneden bent
bepaald betreffende bij bijna binnen boven bovenal bovendien bovengenoemd bovenstaand bovenvermeld
buiten daar daarheen daarin daarna daarnet daarom daarop daarvanlangs dan dat de der deze die dikwijls
dit door doorgaand dus echter eer eerdat eerder eerlang eerst elk elke en enig enigszins enkel er
erdoor even eveneens evenwel gauw gedurende geen gehad gekund geleden gelijk gemoeten gemogen geweest
gewoon gewoonweg haar had hadden hare heb hebben hebt heeft hem hen het hierbeneden hierboven hij hoe
hoewel hun hunne ik ikzelf in inmiddels inzake is jezelf jij jijzelf jou jouw jouwe juist jullie kan
klaar kon konden krachtens kunnen kunt later liever maar mag meer met mezelf mij mijn mijnent mijner
mijzelf misschien mocht mochten moest moesten moet moeten mogen na naar nadat net niet noch nog nu of
ofschoon om omdat omhoog omlaag omstreeks omtrent omver onder ondertussen ongeveer ons onszelf onze
ook op opnieuw opzij over overeind overigens pas precies reeds rond rondom sedert sinds sindsdien slechts
sommige spoedig steeds tamelijk tenzij terwijl thans tijdens toch toen toenmaals toenmalig tot totdat
tussen uit uitgezonderd vaak van vandaan vanuit vanwege veeleer verder vervolgens vol volgens voor
vooraf vooral vooralsnog voorbij voordat voordezen voordien voorheen voorop vooruit vrij vroeg waar
waarom wanneer want waren was wat we wel welk welke wie wiens wier wij wijzelf zal ze zelfs zich zij
zijn zijne zo zodra zonder zou zouden zowat zulke zullen zult een wordt worden werd werden heeft zei
wie wat welke waar wanneer hoeveel hoe waarom welk wiens
""".split())

ENGLISH_STOP = set("""
a an the and or but if of to in on at by for with from as is are was were be been being has have had
do does did what which who whom whose when where why how many much this that these those it its they
them their there he she his her we our you your i me my not no yes can could would should will shall
may might must about into over under than then so such also only any all some each other more most
""".split())

STOPWORDS = DUTCH_STOP | ENGLISH_STOP

MONTHS = {"januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober",
          "november", "december", "january", "february", "march", "may", "june", "july", "august", "october"}
DATE_WORDS = MONTHS | {"maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag", "monday",
                       "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "jaar", "year", "dag",
                       "day", "week"}
NUMBER_WORDS = {
    "één", "eén", "twee", "drie", "vier", "vijf", "zes", "zeven", "acht", "negen", "tien", "elf", "twaalf", "twintig",
    "dertig", "honderd", "duizend", "miljoen", "miljard", "dertigste", "eerste", "tweede", "derde",
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twenty", "thirty", "hundred",
    "thousand", "million", "billion", "first", "second", "third", "thirtieth",
}

_NL_MARKERS = {"de", "het", "een", "en", "van", "wat", "wie", "welke", "waar", "wanneer", "hoeveel",
               "hoe", "waarom", "is", "zijn", "niet", "op", "voor", "met", "dat", "die", "er", "ook",
               "werd", "heeft", "zei", "naar", "bij", "over", "om", "zich", "uit", "aan", "tot"}
_EN_MARKERS = {"the", "a", "an", "and", "of", "what", "who", "which", "where", "when", "how", "why",
               "is", "are", "was", "were", "did", "does", "do", "not", "for", "with", "that", "to",
               "in", "on", "at", "by", "from", "about", "many", "much", "has", "have"}


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("dutch")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    return _stemmer().stemWord(word)


def content_terms(text: str) -> list[str]:
    """Stemmed content words (stopwords and 1-char tokens dropped); used by BM25 and support scores."""
    text = re.sub(r"(?<=\d)[.,](?=\d{3}\b)", "", text)  # 10.000 -> 10000 (one number, one term)
    out = []
    for w in words(text):
        if w in STOPWORDS or (len(w) < 2 and not w.isdigit()):
            continue
        out.append(stem(w.replace("’", "'")))
        if "-" in w:  # "NAVO-ministers" also matches "ministers"
            out.extend(stem(p) for p in w.split("-") if len(p) > 1 and p not in STOPWORDS)
    return out


def term_coverage(query: str, text: str) -> float:
    """Share of ``query``'s content terms (stemmed) that occur in ``text``; 0 when it has none."""
    q = set(content_terms(query))
    if not q:
        return 0.0
    return len(q & set(content_terms(text))) / len(q)


def language(text: str) -> str:
    """'en' or 'nl' from function-word counts; Dutch wins ties (the corpus language)."""
    ws = words(text)
    nl = sum(w in _NL_MARKERS for w in ws)
    en = sum(w in _EN_MARKERS for w in ws)
    return "en" if en > nl else "nl"


# Invisible characters in input text (documents and questions): C0/C1 control characters other than
# tab, line breaks and form feed, and Unicode format characters (zero-width space/joiners, soft hyphen,
# bidirectional overrides that can make text display reversed, byte-order marks). They split words
# ("NA\u200bVO"), hide text or spoof its display, and carry no meaning for search or answers.
_INVISIBLE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f"
                        "\ufeff\ufff9-\ufffb]")


def strip_invisible(text: str) -> str:
    """``text`` without control and zero-width/format characters (tab, newlines, \\v and \\f kept)."""
    return _INVISIBLE.sub("", text)
