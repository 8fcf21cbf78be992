"""Deterministic generators of realistic Chinese identities (no real person is described)."""

from __future__ import annotations

import random
from datetime import date, timedelta

from careloop.kit.identifiers import resident_id_check_char

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
    "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN_MALE = "伟强磊军勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆建国志国庆海东文德福宝林峰"
GIVEN_FEMALE = "芳娜敏静丽艳娟霞燕玲桂英秀兰红梅琳婷雪慧莉萍洁晶颖倩欣玉凤淑珍春华云"
# Administrative division codes (GB/T 2260) of a few city districts.
REGIONS = [
    "110105",
    "110108",
    "310104",
    "310115",
    "440106",
    "440305",
    "320102",
    "330106",
    "510107",
    "420106",
    "610113",
    "370102",
]
STREETS = ["人民路", "解放路", "中山路", "建设路", "和平路", "光明街", "文化路", "长江路", "黄河路"]
CITIES = [
    "北京市朝阳区",
    "北京市海淀区",
    "上海市徐汇区",
    "上海市浦东新区",
    "广州市天河区",
    "深圳市南山区",
    "南京市玄武区",
    "杭州市西湖区",
    "成都市武侯区",
    "武汉市武昌区",
]


def chinese_name(rng: random.Random, sex: str) -> str:
    pool = GIVEN_MALE if sex == "male" else GIVEN_FEMALE
    given = rng.choice(pool) + (rng.choice(pool) if rng.random() < 0.6 else "")
    return rng.choice(SURNAMES) + given


def birth_date(rng: random.Random, today: date, low: int, high: int) -> date:
    days = rng.randint(low * 365, high * 365)
    return today - timedelta(days=days)


def resident_id(rng: random.Random, born: date, sex: str, serial: int | None = None) -> str:
    order = serial if serial is not None else rng.randint(0, 499)
    seq = (order % 500) * 2 + (1 if sex == "male" else 0)  # odd for men, even for women
    body = f"{rng.choice(REGIONS)}{born:%Y%m%d}{seq:03d}"
    return body + resident_id_check_char(body)


def mobile(rng: random.Random) -> str:
    return "1" + rng.choice("3589") + str(rng.randint(0, 9)) + f"{rng.randint(0, 99_999_999):08d}"


def address(rng: random.Random) -> str:
    return (
        f"{rng.choice(CITIES)}{rng.choice(STREETS)}{rng.randint(1, 300)}号"
        f"{rng.randint(1, 30)}栋{rng.randint(101, 2806)}室"
    )
