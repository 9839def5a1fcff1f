"""Personal names in free text, English and Chinese, found by the words around them.

Part of tastebud/pii.py (kind "name"). No NER model ships offline (spaCy and
Presidio models need a download), so a name is only taken where the words around
it say a person is named:

* English: a self-introduction ("my name is John Smith", "her name is Claire",
  "call me Bob", "name: Laura Chen", "I'm Anna,", "this is Li Wei"), an honorific
  ("Mr. Henderson", "Dr. J. Nguyen"), a closing at the end of the text ("Thanks,
  Mark", "Best regards,\\nPeter Novak", "— Sarah K."). Name words are capitalised
  and not in a list of common words ("I'm Happy", "call me Crazy", "This is
  England", "Mr. Robot"); after "I'm" / "this is" a single word must end the
  clause ("I'm Anna, ..."), two words may run on.
* Chinese: a common surname (百家姓, about 200 single and the usual compound ones)
  and one or two given characters after a cue (我叫, 我的名字是, 联系人：, 收件人：, 本人,
  我是 …), before an honorific (张先生, 王女士, 李老师: only the surname is taken),
  or alone as a signature after a dash at the end. "我是…" and "本人…" must end at
  punctuation (我是科幻迷, 我是成龙的粉丝); words that open with a surname character
  (高中生, 程序员, 路人) are listed out.

A film talk's "Tom Hanks was great" keeps its actor: a name without a cue is not found.
`find` returns (start, end) offsets; pii.py turns them into spans.
"""

from __future__ import annotations

import re

# Text without one of these holds no name this module finds (pii.py's cheap pre-check).
CUES = re.compile(
    r"name|call me|go by|this is|i'm|i’m|i am|\b(?:mrs?|ms|miss|mx|dr|prof|professor|sir|madam|mister)\b|"
    r"thank|thx|cheers|regards|best|sincerely|yours|love|warmly|signed|[—–]|(?:^|\s)-|"
    r"我叫|名字|我是|本人|姓名|叫|联系人|收件人|收货人|署名|先生|女士|小姐|老师|经理|医生|师傅|阿姨|叔叔|同学|教授|律师|太太",
    re.IGNORECASE,
)

# --- English -------------------------------------------------------------------------

_WORD = r"[A-ZÀ-Ý](?:[a-zà-ÿ]+(?:[A-Z][a-zà-ÿ]+)?|['’][A-Z][a-zà-ÿ]+)(?:-[A-Z][a-zà-ÿ]+)?"
_INITIAL = r"[A-Z]\.?(?![\w'’])"
# One to three name words, perhaps closed by an initial ("Sarah K.").
_RUN = rf"(?P<name>{_WORD}(?: {_WORD}){{0,2}}(?: {_INITIAL})?)"

# Capitalised words that are not names: sentence words, adjectives, film-title words,
# nationalities, places and brands a review thanks or calls itself.
STOP_WORDS = frozenset("""
a an the this that these those not no so just really very still here there back home out in on at up down off
over by with for from of to as and or but if when what who how why where yes hi hello hey dear thanks thank
sorry glad happy sad tired done sure okay ok fine new old big little good bad great nice right wrong best
worst going looking thinking watching trying getting feeling lost gone dead alive legend number one two ten
all always never only also your you my me we us it is was be am are love hate mad free ready fed bored
crazy maybe later tonight today tomorrow anytime sometime whenever please again everyone everybody guys
folks team all mate god sir madam mom mum dad mother father iron batman groot spartacus sparta england
america london paris hollywood bollywood who strange strangelove robot bean nobody deeds dolittle marvel
american british english chinese french german italian spanish japanese korean indian canadian australian
irish scottish welsh mexican brazilian russian dutch swedish polish jewish muslim christian catholic vegan
vegetarian monday tuesday wednesday thursday friday saturday sunday netflix tastebud hulu disney amazon
prime apple google youtube hbo spotify imdb support admin customer user mr mrs ms miss mx dr prof professor
mister
""".split())

_POSSESSOR = frozenset("""my his her their our your wife's husband's son's daughter's friend's brother's
sister's mom's mum's dad's mother's father's partner's boyfriend's girlfriend's kid's child's boss's""".split())

# "my name is", "call me": cues that only introduce a name (the cue's case is free).
_EN_STRONG = re.compile(
    rf"(?i:\b(?P<cue>(?:(?P<owner>[\w'’]+) )?(?:name is|name's)|name\s*[:：]|call me|you can call me|i go by))\s+{_RUN}"
)
# "I'm", "this is" also introduce what one is and titles ("I'm Not There", "This Is Spinal Tap").
_EN_WEAK = re.compile(rf"\b(?:I'm|I’m|I am|[Tt]his is)\s+{_RUN}")
_HONORIFIC = re.compile(
    rf"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Professor|Sir|Madam|Mister)\.?\s+(?P<name>(?:[A-Z]\. )?{_WORD}(?: {_WORD})?)"
)
_CLOSING = (r"(?:Many thanks|Thanks again|Thank you|Thanks|Thx|Cheers|Best regards|Kind regards|Warm regards|Regards|"
            r"Best wishes|Best|Sincerely|Yours truly|Yours|Love|Warmly|Signed)")
# A closing and a name at the very end: "Thanks, Mark", "Best regards,\nDr. Peter Novak", "— Sarah K."
_SIGN_OFF = re.compile(
    rf"(?:(?:^|(?<=[.!?\n]))\s*(?i:{_CLOSING})[,!.]?|(?:^|(?<=\s))[—–-]{{1,2}})\s*"
    rf"(?:(?:Mr|Mrs|Ms|Dr|Prof)\.?\s+)?{_RUN}\s*[.!]?\s*$"
)


def _stop(word: str) -> bool:
    word = word.lower().replace("’", "'")
    return word in STOP_WORDS or word.removesuffix("'s") in STOP_WORDS or (len(word) > 5 and word.endswith("ing"))


def _trimmed(match: re.Match, group: str = "name") -> tuple[int, int] | None:
    """The name group up to its first common word; None when it opens with one."""
    start = match.start(group)
    end = start
    for word in re.finditer(r"\S+", match.group(group)):
        if _stop(word.group().rstrip(".")):
            break
        end = start + word.end()
    return (start, end) if end > start else None


def _english(text: str) -> list[tuple[int, int]]:
    out = []
    for m in _EN_STRONG.finditer(text):
        owner = (m.group("owner") or "").lower().replace("’", "'")
        cue = m.group("cue").lower()
        if ("name is" in cue or "name's" in cue) and owner and owner not in _POSSESSOR:
            continue  # "the movie's name is Heat", "its name is"
        if cue.startswith("name") or ("name" in cue and not owner):
            before = text[:m.start()].split()
            if before and before[-1].lower().rstrip("'’s") in ("movie", "film", "title", "show", "series", "item",
                                                              "user", "file", "product", "song", "band", "book",
                                                              "character", "app", "device", "network", "channel",
                                                              "brand", "cinema", "theater", "theatre", "pet", "dog",
                                                              "cat", "team", "club", "game", "user"):
                continue
        span = _trimmed(m)
        if span:
            out.append(span)
    for m in _EN_WEAK.finditer(text):
        span = _trimmed(m)
        if not span:
            continue
        words = text[span[0]:span[1]].split()
        rest = text[span[1]:]
        # one word must end the clause ("I'm Anna, ..."); two or more may run on, when none is a common word
        if len(words) == 1 and not re.match(r"\s*(?:[,;.!?—–)]|-\s|$|and\b)", rest):
            continue
        if len(words) > 1 and span[1] != m.end("name"):
            span = (span[0], span[0] + len(words[0])) if re.match(r"\s*(?:[,;.!?]|$)", rest) else None
            if span is None:
                continue
        out.append(span)
    for m in _HONORIFIC.finditer(text):
        name = m.group("name")
        first = name.split()[-1] if re.match(r"[A-Z]\. ", name) else name.split()[0]
        if _stop(first):
            continue
        span = _trimmed(m) if not re.match(r"[A-Z]\. ", name) else (m.start("name"), m.end("name"))
        if span:
            out.append(span)
    for m in _SIGN_OFF.finditer(text):
        span = _trimmed(m)
        if span and span[1] == m.end("name"):
            out.append(span)
    return out


# --- Chinese ---------------------------------------------------------------------------

_COMPOUND = "欧阳|司马|上官|诸葛|东方|皇甫|尉迟|公孙|慕容|长孙|令狐|夏侯|端木|西门|南宫|独孤|宇文|轩辕"
# The common single surnames, less 和/向/于 before an honorific (和老师一起, 向老师请教, 于是).
_SINGLE = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢"
           "姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔汤常温康施文牛"
           "樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁"
           "冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米"
           "柏宗瞿桂全佟应臧闵苟邬边卞姬师仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝")
SURNAME = rf"(?:{_COMPOUND}|[{_SINGLE}和向于])"
_SURNAME_TITLED = rf"(?:{_COMPOUND}|[{_SINGLE}])"
# Characters a given name does not hold: particles, verbs and words that follow a cue.
_GIVEN = r"(?:(?![的是在和了就也都要想喜看说不很把被给吗呢吧啊去过着到一这那个们])[\u4e00-\u9fff])"
_FULL = rf"(?P<name>{SURNAME}{_GIVEN}{{1,2}})"
_END = r"(?=[，。！？、,.!?;；:：\s~～…）)]|$)"

# Cues that only introduce a name: the name may run into the next words.
_ZH_STRONG = re.compile(
    rf"(?:我叫|我的名字是|我的名字叫|名字叫|名字是|姓名[是:：]?|联系人[是:：]?|收件人[是:：]?|收货人[是:：]?|署名[是:：]?|"
    rf"(?:^|(?<=[，,。！!？?\s]))(?:我)?叫)\s*{_FULL}"
)
# "我是…", "本人…" also say what one is (我是科幻迷): the name must end at punctuation.
_ZH_WEAK = re.compile(rf"(?:我是|我就是|本人|这里是|这边是)(?:客户|会员|用户|你们的客户)?\s*{_FULL}{_END}")
_ZH_TITLE = r"(?:先生|女士|小姐|老师|经理|医生|师傅|阿姨|叔叔|同学|教授|律师|太太)"
# 张先生, 请转告陈经理, 谢谢王老师: the surname (and a given name, if any) before a title, at a
# clause start or after a word that addresses someone; only the name is taken.
_ZH_TITLED = re.compile(
    rf"(?:^|(?<![\u4e00-\u9fff])|(?<=谢谢|感谢|麻烦|转告|联系|通知|告诉)|(?<=[请找问跟给是叫致对向让替帮的位和与]))"
    rf"(?P<name>{_SURNAME_TITLED}{_GIVEN}{{0,2}}?){_ZH_TITLE}"
)
_ZH_SIGNED = re.compile(rf"(?:^|(?<=[。！!？?\s]))[—–-]{{1,2}}\s*{_FULL}\s*[。.!！]?\s*$")

# Words that open with a surname character but name no one.
ZH_STOP_WORDS = (
    "谢谢", "高中", "高手", "高兴", "高级", "路人", "程序", "白领", "文科", "文艺", "文员", "金庸", "毕业", "应届", "师范", "全职",
    "单身", "江湖", "华人", "华侨", "游客", "车主", "房东", "房客", "石头", "马迷", "龙迷", "安静", "方便", "常客", "成年",
    "成人", "成员", "明星", "明白", "时候", "雷锋", "包租", "童星", "关注", "管理", "黄牛", "于是", "司机", "齐天", "项目",
    "宫崎", "周末", "周星", "史上", "万人", "钟点", "任何", "任性", "曾经", "连续", "严格", "温柔", "武林", "商人", "和平",
    "常常", "常规", "应该", "全部", "全家", "安全", "宁愿", "华语", "古装", "卫生", "米粉", "龙套", "秦始",
)
_ZH_STOP_END = "人员迷粉者手客控党族狗工们友领"


def _chinese(text: str) -> list[tuple[int, int]]:
    out = []
    for pattern in (_ZH_STRONG, _ZH_WEAK, _ZH_SIGNED):
        for m in pattern.finditer(text):
            name = m.group("name")
            if name.startswith(ZH_STOP_WORDS) or (len(name) == 3 and name[-1] in _ZH_STOP_END):
                continue
            out.append((m.start("name"), m.end("name")))
    for m in _ZH_TITLED.finditer(text):
        if not m.group("name").startswith(ZH_STOP_WORDS):
            out.append((m.start("name"), m.end("name")))
    return out


def find(text: str) -> list[tuple[int, int]]:
    """(start, end) of each name in `text`; they may overlap (pii.py keeps one)."""
    if not CUES.search(text):
        return []
    return _english(text) + _chinese(text)
