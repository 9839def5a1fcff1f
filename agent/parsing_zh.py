"""What the router reads in a Chinese message, by rules: the English-only
sentence embedder gives Chinese text no usable meaning (every Chinese
utterance lands near the same few examples), so Chinese intents come from
keyword rules in priority order, and arguments from patterns (第二部, 三部,
用户3, 喜剧, 像《X》那样的).

Measured on the conversation benchmark (bench/data/conversations.jsonl); a
multilingual embedding model was not needed for it, and none installs from
the registry with its weights (docs/design.md#the-chat-agent).
"""

from __future__ import annotations

import re

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")


def language(text: str) -> str:
    """"zh" when the message is written in Chinese (English titles inside it
    allowed), else "en"."""
    cjk = len(_CJK.findall(text or ""))
    return "zh" if cjk >= 2 and cjk >= len(_LATIN_WORD.findall(text or "")) else "en"


# intent -> pattern; the first match in this order wins
_RULES: list[tuple[str, re.Pattern[str]]] = [(name, re.compile(p)) for name, p in [
    ("help", r"你(?:能|会|可以)(?:帮我|为我|给我)?(?:做|干)(?:些)?什么|能做些什么|怎么用|如何使用|帮助|使用说明|你是谁|(?:可以|能)问(?:你)?(?:些)?什么|"
             r"^\s*(?:你好|您好|嗨|哈喽)[！!。\s]*$"),
    ("out_of_scope", r"天气|气温|下雨|新闻|股票|股价|汇率|比分|球赛|赛果|笑话|菜谱|做饭|怎么做菜|食谱|数学|作业|翻译|几点了|"
                     r"你好吗|最近怎么样|吃了吗|彩票|航班|火车票|地图|导航|写一首诗|写诗"),
    ("status", r"系统状态|运行状态|健康状况|系统.*(?:正常|健康)|(?:多少|几个)(?:用户|部电影|个物品|条事件|事件)|统计数据|存储统计"),
    ("refresh", r"刷新|重新计算|重算|重建|重新生成|更新.{0,8}(?:画像|档案|资料)"),
    ("log", r"推荐(?:过|了)(?:什么|哪些|哪几部)|推荐记录|推荐日志|推荐列表|(?:看到|展示|显示|收到|得到)(?:过|了)(?:哪些|什么)?.{0,4}推荐|上次推荐"),
    ("explain", r"为什么|为何|为啥|干嘛推荐|凭什么|怎么会推荐|怎么(?:选|挑|算)(?:出来)?的|推荐.{0,12}(?:理由|原因)|(?:理由|原因)是|解释一下"),
    ("dislike", r"不喜欢|讨厌|不想再看|不想看|(?:别|不要)再?(?:给我|帮我)?推荐|厌倦|看腻|受够|没意思|太无聊|不感兴趣|不好看|难看|差评"),
    ("history", r"历史|看过(?:什么|哪些|的)|评过|打过分|评分记录|最近看了|最近.{0,8}(?:评分|打分|标签|评论|记录|事件|活动)|观看记录|"
                r"(?:打|加|添加|写)过.{0,6}(?:标签|分|评论)|哪些标签|记录"),
    ("profile", r"画像|画象|档案|兴趣|口味|喜好|偏好|品味|喜欢(?:什么|哪些|哪种|哪类|的类型)|爱看(?:什么|哪些)|了解我"),
    ("search", r"搜索|搜一下|搜一搜|查找|查一下|查询|找一下|找找|找(?:一|几|两|三)?部|有没有(?:关于|讲)|是关于什么|讲的是什么|讲什么|介绍一下|是什么电影"),
    # 推见/推建/推件: the pinyin input method's homophones of 推荐 (tuījiàn)
    ("recommend", r"推荐|推[见建件剑健鉴]|建议|好看的|看什么|想看|来几部|来一部|来[一两二三四五六七八九十\d]{1,2}部|来点|来些|整点|再来|挑.{0,4}部|选.{0,4}部|类似|相似|"
                  r"像.{1,40}(?:那样|这样|一样|之类)|有什么.{0,6}(?:电影|片子)|片单"),
    ("search", r"关于.{1,20}的电影|讲.{1,20}的电影"),
    ("like", r"喜欢|很好看|好看|不错|很棒|太棒|精彩|赞|点赞|收藏|爱死"),
]]

_ZH_NUMBERS = {"一": 1, "两": 2, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
_ORDINAL = re.compile(r"第\s*([一二三四五六七八九十]|\d{1,2})\s*(?:部|个|条|项|名|位|部电影)?|(最后一|最后那)(?:部|个)")
_COUNT = re.compile(r"([一两二三四五六七八九十]|\d{1,2})\s*(?:部|个|条|项)(?!电影院)")
_TOP = re.compile(r"前\s*([一两二三四五六七八九十]|\d{1,2})")
# ids are bounded and start at an id boundary: an unbounded run before 号用户 made
# a message of 800 zeros take seconds (found by schemathesis through /v1/chat)
_USER = re.compile(r"(?:用户|会员|顾客)\s*(?:id\s*|ID\s*|编号\s*)?#?\s*([A-Za-z0-9_-]{0,40}\d[A-Za-z0-9_-]{0,40})"
                   r"|(?<![A-Za-z0-9_-])([A-Za-z0-9_-]{0,40}\d[A-Za-z0-9_-]{0,40})\s*号用户")
_USER_LIST = re.compile(r"(?:用户|会员|顾客)\s*((?:\d+\s*(?:、|，|,|和|及|与)\s*)+\d+)")
_ALL = re.compile(r"所有|全部|每个|每一个|全体")
_SEED = re.compile(r"(?:像|类似(?:于)?|和|跟|与)\s*[《“\"']?(.{1,60}?)[》”\"']?\s*(?:那样|这样|一样|差不多|类似|相似|之类)?的")
# "别" but not inside 特别/区别/级别/类别/分别/告别/识别/性别/个别
_NEGATOR = re.compile(r"不|(?<![特区级类分告识性个])别|没|讨厌|厌倦|腻|除了|受够|排除")

CATEGORY_WORDS = {
    "喜剧": "Comedy", "搞笑": "Comedy", "恐怖": "Horror", "鬼片": "Horror", "动作": "Action", "科幻": "Sci-Fi",
    "爱情": "Romance", "浪漫": "Romance", "动画": "Animation", "卡通": "Animation", "动漫": "Animation", "剧情": "Drama",
    "惊悚": "Thriller", "犯罪": "Crime", "冒险": "Adventure", "奇幻": "Fantasy", "魔幻": "Fantasy", "悬疑": "Mystery",
    "推理": "Mystery", "战争": "War", "纪录片": "Documentary", "纪录": "Documentary", "儿童": "Children",
    "家庭": "Children", "亲子": "Children", "音乐": "Musical", "歌舞": "Musical", "西部": "Western",
    "黑色电影": "Film-Noir",
}
HISTORY_TYPES = {"评分": "rating", "打分": "rating", "打过分": "rating", "评过分": "rating", "标签": "tag", "点赞": "like",
                 "评论": "review", "购买": "purchase", "买过": "purchase"}
# moods said in Chinese, in the English words the (English-only) embedder reads for a recommendation's intent
MOODS = {"轻松": "light", "搞笑": "funny", "幽默": "funny", "黑暗": "dark", "烧脑": "mind-bending", "慢热": "slow-burn",
         "瘆人": "creepy", "吓人": "scary", "毛骨悚然": "creepy", "温馨": "heartwarming", "感人": "moving", "催泪": "tear-jerking",
         "刺激": "thrilling", "紧张": "tense", "浪漫": "romantic", "治愈": "feel-good", "励志": "inspiring", "经典": "classic",
         "老片": "old classic", "热血": "action-packed", "沉重": "bleak", "深刻": "thought-provoking", "欢乐": "cheerful",
         "悲伤": "sad", "史诗": "epic", "怀旧": "nostalgic", "奇怪": "weird", "诡异": "eerie", "血腥": "gory", "甜": "sweet"}
_ITEM = re.compile(r"(?:编号|物品|电影|影片)\s*#?\s*(\d{1,20})|(?<!\d)(\d{1,20})\s*号(?:电影|物品|影片)")


def intent(text: str) -> str | None:
    for name, pattern in _RULES:
        if pattern.search(text):
            return name
    return None


def _number(raw: str) -> int | None:
    return int(raw) if raw.isdigit() else _ZH_NUMBERS.get(raw)


def ordinal(text: str) -> int | None:
    m = _ORDINAL.search(text)
    if not m:
        return None
    return -1 if m.group(2) else _number(m.group(1))


def count(text: str) -> int | None:
    for m in (_TOP.search(text), *(x for x in _COUNT.finditer(text) if not text[max(0, x.start() - 1):x.start()] == "第")):
        if m:
            n = _number(m.group(1))
            return max(1, min(20, n)) if n else None
    return None


def user_mentions(text: str) -> list[str]:
    found = [m.group(1) or m.group(2) for m in _USER.finditer(text)]
    for m in _USER_LIST.finditer(text):  # 用户 4、9 和 30
        found += re.findall(r"\d+", m.group(1))
    return list(dict.fromkeys(found))


def wants_all(text: str) -> bool:
    return bool(_ALL.search(text))


def seed_reference(text: str) -> str | None:
    """The X of "像X那样的" / "类似X的": a title, an ordinal or 这部."""
    m = _SEED.search(text)
    if not m:
        return None
    ref = m.group(1).strip(" 《》“”\"'")
    return ref or None


_GENRE_BEFORE_FILM = re.compile(r"([\u4e00-\u9fff]{2})(?:片|电影|影片)")


def categories_in(text: str, categories: list[str]) -> tuple[list[str], list[str]]:
    """(wanted, unwanted) categories named in Chinese (or English) words; unwanted
    when a negator comes in the few characters before."""
    found: list[tuple[int, str]] = []
    low = text.lower()
    names = {w: c for w, c in CATEGORY_WORDS.items() if c in categories}
    names.update({c.lower(): c for c in categories})
    for word, cat in sorted(names.items(), key=lambda kv: -len(kv[0])):
        pos = low.find(word)
        if pos >= 0 and all(cat != f for _, f in found):
            found.append((pos, cat))
    if not found:  # a typo of a two-character genre before 片/电影: 喜居片 -> 喜剧
        for m in _GENRE_BEFORE_FILM.finditer(text):
            close = {c for w, c in names.items() if len(w) == 2 and w[0] == m.group(1)[0] and w != m.group(1)}
            if len(close) == 1:
                found.append((m.start(), close.pop()))
    wanted, unwanted = [], []
    for pos, cat in sorted(found):
        before = text[max(0, pos - 8):pos]
        (unwanted if _NEGATOR.search(before) else wanted).append(cat)
    return wanted, unwanted


def history_types(text: str) -> list[str]:
    return list(dict.fromkeys(t for w, t in HISTORY_TYPES.items() if w in text))


_QUERY_NOISE = re.compile(r"请|帮我|给我|麻烦|一下|搜索|搜一搜|搜|查找|查询|查|找找|找|有没有|有什么|关于|讲的是什么|讲什么|讲|是什么|"
                          r"介绍|的电影|电影|影片|片子|吗|呢|吧|[？?！!。，,、\s]")


def search_query(text: str) -> str:
    """What a Chinese search asks for: the message without its request words."""
    return _QUERY_NOISE.sub(" ", text).strip()


def moods(text: str) -> list[str]:
    return list(dict.fromkeys(english for word, english in MOODS.items() if word in text))


def item_id(text: str) -> str | None:
    """编号318 / 318号电影: an item named by its id."""
    m = _ITEM.search(text)
    return (m.group(1) or m.group(2)) if m else None
