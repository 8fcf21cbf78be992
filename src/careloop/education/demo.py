"""The demo hospital's education library: bilingual articles for hypertension, diabetes and
recovery after an operation, and one linked video. General guidance written for CareLoop."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from careloop.education import models as em
from careloop.kit.clock import utc_now

# (key, ICD-10 prefixes, stage, level, kind, {language: (title, body)}, video link)
ITEMS: list[tuple[str, list[str], str, str, str, dict[str, tuple[str, str]], str]] = [
    (
        "bp-home",
        ["I10", "I11"],
        "week_1",
        "easy",
        "article",
        {
            "zh-hans": (
                "在家正确测量血压",
                "# 测量前\n"
                "- 测量前30分钟内不要吸烟、喝咖啡或运动。\n"
                "- 先排空膀胱，安静坐好休息5分钟。\n\n"
                "# 测量时\n"
                "- 背靠椅背，双脚平放地面，手臂放在桌上，袖带与心脏同高。\n"
                "- 袖带绑在上臂，下缘在肘窝上方2到3厘米。\n"
                "- 测量时不说话。隔1分钟再测一次，记录两次的结果。\n\n"
                "# 什么时候测\n"
                "早上起床后1小时内（服药前、早饭前）和晚上睡觉前各测一次。"
                "把结果录入CareLoop，医护人员就能看到。\n\n"
                "**如果血压达到或超过180/110，休息5分钟后再测；仍然这么高，请马上联系我们。**",
            ),
            "en": (
                "Measuring your blood pressure at home",
                "# Before you measure\n"
                "- No smoking, coffee or exercise in the 30 minutes before.\n"
                "- Empty your bladder, then sit quietly for 5 minutes.\n\n"
                "# While you measure\n"
                "- Sit with your back supported, feet flat, arm resting on a table with the cuff "
                "at heart level.\n"
                "- Put the cuff on your bare upper arm, its edge 2–3 cm above the elbow crease.\n"
                "- Do not talk. Wait one minute, measure again, and write down both readings.\n\n"
                "# When to measure\n"
                "Within an hour of getting up (before medicine and breakfast) and before bed. "
                "Enter the readings in CareLoop so your care team sees them.\n\n"
                "**If it is 180/110 or higher, rest 5 minutes and measure again; if it is still "
                "that high, contact us at once.**",
            ),
        },
        "",
    ),
    (
        "bp-salt",
        ["I10", "I11"],
        "weeks_3_4",
        "easy",
        "article",
        {
            "zh-hans": (
                "少吃盐，血压降",
                "每天吃盐不超过5克，大约是一个啤酒瓶盖平装一盖。\n\n"
                "# 小窍门\n"
                "- 用限盐勺，做菜出锅前再放盐。\n"
                "- 少用酱油、蚝油、豆瓣酱，它们也含很多盐。\n"
                "- 少吃咸菜、腌肉、方便面和加工肉。\n"
                "- 用葱、姜、蒜、醋、柠檬调味。\n"
                "- 买包装食品时看营养标签上的“钠”。\n\n"
                "坚持几周，口味就会慢慢变淡，血压也会更好控制。",
            ),
            "en": (
                "Less salt, lower blood pressure",
                "Keep to less than 5 g of salt a day — about one level teaspoon.\n\n"
                "# Tips\n"
                "- Use a measuring spoon and add salt at the end of cooking.\n"
                "- Go easy on soy sauce, oyster sauce and bean paste: they are salty too.\n"
                "- Cut down on pickles, cured meat, instant noodles and processed meat.\n"
                "- Flavour food with spring onion, ginger, garlic, vinegar or lemon.\n"
                "- Check “sodium” on food labels.\n\n"
                "After a few weeks your taste adjusts, and your blood pressure is easier to "
                "control.",
            ),
        },
        "",
    ),
    (
        "bp-video",
        ["I10"],
        "any",
        "easy",
        "video",
        {
            "zh-hans": (
                "视频：量血压的五个步骤",
                "这段视频由本院护理部录制，演示在家量血压的正确姿势。点下面的链接观看。",
            ),
            "en": (
                "Video: five steps to measure your blood pressure",
                "Recorded by our nursing team, this video shows the right way to sit and place "
                "the cuff at home. Use the link below to watch it.",
            ),
        },
        "https://video.example.org/careloop/bp-five-steps",
    ),
    (
        "dm-glucose",
        ["E11", "E10"],
        "week_1",
        "easy",
        "article",
        {
            "zh-hans": (
                "自己在家测血糖",
                "# 步骤\n"
                "1. 用温水和肥皂洗手并擦干。\n"
                "2. 在指尖侧面采血，不要用力挤。\n"
                "3. 把血滴到试纸上，等待读数。\n"
                "4. 记录时间和结果，并录入CareLoop。\n\n"
                "# 什么时候测\n"
                "按医生的要求，一般是空腹（早饭前）和餐后2小时。"
                "感觉发抖、出汗、心慌时也要马上测。\n\n"
                "**血糖低于3.9 mmol/L时，立即吃15克糖（如3块方糖），15分钟后再测。**",
            ),
            "en": (
                "Checking your blood sugar at home",
                "# Steps\n"
                "1. Wash your hands with warm water and soap, and dry them.\n"
                "2. Prick the side of a fingertip; do not squeeze hard.\n"
                "3. Touch the drop to the test strip and wait for the reading.\n"
                "4. Note the time and result, and enter it in CareLoop.\n\n"
                "# When to check\n"
                "As your doctor asked — usually before breakfast and 2 hours after a meal. "
                "Also check at once if you feel shaky, sweaty or your heart races.\n\n"
                "**Below 3.9 mmol/L: take 15 g of sugar (for example 3 sugar cubes) at once and "
                "check again after 15 minutes.**",
            ),
        },
        "",
    ),
    (
        "dm-feet",
        ["E11", "E10"],
        "month_3",
        "standard",
        "article",
        {
            "zh-hans": (
                "糖尿病人怎样保护双脚",
                "糖尿病会让脚的感觉变差，小伤口不容易发现，也更难愈合。\n\n"
                "# 每天\n"
                "- 用温水洗脚（先用手肘试水温），擦干脚趾缝。\n"
                "- 检查脚底和趾缝有没有水泡、破口、发红；看不到可以用镜子或请家人帮忙。\n"
                "- 皮肤干燥可以涂润肤霜，但不要涂在趾缝里。\n\n"
                "# 鞋袜\n"
                "- 穿合脚、软底、包头的鞋，穿鞋前先检查鞋里有没有异物。\n"
                "- 不要赤脚走路，不要用热水袋或电热毯直接暖脚。\n\n"
                "**发现伤口、发黑或红肿发热，请当天联系医护人员。**",
            ),
            "en": (
                "Looking after your feet with diabetes",
                "Diabetes can dull the feeling in your feet, so small wounds go unnoticed and "
                "heal slowly.\n\n"
                "# Every day\n"
                "- Wash your feet in warm water (test it with your elbow) and dry between the "
                "toes.\n"
                "- Look for blisters, cuts or redness on the soles and between the toes; use a "
                "mirror or ask a family member.\n"
                "- Moisturise dry skin, but not between the toes.\n\n"
                "# Shoes and socks\n"
                "- Wear well-fitting, soft, closed shoes, and check inside them before putting "
                "them on.\n"
                "- Never walk barefoot, and do not warm your feet with hot-water bottles or "
                "electric blankets.\n\n"
                "**A wound, dark skin, or a red, hot, swollen area: contact your care team the "
                "same day.**",
            ),
        },
        "",
    ),
    (
        "postop-wound",
        ["Z48", "Z98", "Z09"],
        "after_discharge",
        "easy",
        "article",
        {
            "zh-hans": (
                "出院后的伤口护理",
                "# 保持清洁干燥\n"
                "- 按医护人员的要求换药，换药前后洗手。\n"
                "- 拆线前不要泡澡；淋浴时间要短，之后轻轻拍干伤口。\n\n"
                "# 注意观察\n"
                "- 轻微发红和疼痛是正常的，会一天天减轻。\n"
                "- 体温超过38°C，伤口越来越红、肿、热，或流出脓液，请当天联系我们。\n\n"
                "# 饮食与休息\n"
                "多吃含蛋白质的食物（鸡蛋、鱼、豆制品）和蔬菜水果，有助伤口愈合。保证睡眠。",
            ),
            "en": (
                "Caring for your wound after you go home",
                "# Keep it clean and dry\n"
                "- Change the dressing as your nurse showed you; wash your hands before and "
                "after.\n"
                "- No baths until the stitches are out; keep showers short and pat the wound "
                "dry.\n\n"
                "# Watch for changes\n"
                "- Slight redness and soreness are normal and should ease day by day.\n"
                "- Fever above 38 °C, or a wound that gets redder, more swollen, hot or leaks "
                "pus: contact us the same day.\n\n"
                "# Food and rest\n"
                "Protein (eggs, fish, tofu), vegetables and fruit help the wound heal. Get "
                "enough sleep.",
            ),
        },
        "",
    ),
    (
        "postop-moving",
        ["Z48", "Z98", "Z09"],
        "week_2",
        "easy",
        "article",
        {
            "zh-hans": (
                "手术后逐步恢复活动",
                "适当活动能预防血栓、帮助肺部和肠道恢复。\n\n"
                "- 每天多次短距离散步，慢慢增加时间。\n"
                "- 躺着或坐着时常做踝泵运动：脚尖向上勾、再向下踩，每次10到20下。\n"
                "- 6周内不要提重物（超过5公斤），除非医生另有说明。\n"
                "- 感到疲劳就休息，这是正常的。\n\n"
                "**小腿突然肿痛、胸痛或呼吸困难，请立即拨打120。**",
            ),
            "en": (
                "Getting moving again after your operation",
                "Gentle activity helps prevent clots and gets your lungs and bowels going.\n\n"
                "- Take short walks several times a day, and slowly make them longer.\n"
                "- When lying or sitting, pump your ankles: toes up, then down, 10 to 20 times.\n"
                "- Do not lift anything heavier than 5 kg for 6 weeks unless your surgeon says "
                "otherwise.\n"
                "- Feeling tired is normal: rest when you need to.\n\n"
                "**A painful swollen calf, chest pain or trouble breathing: call 120 at once.**",
            ),
        },
        "",
    ),
]


def build(org: Any, seed: int = 7) -> list[em.ContentItem]:
    """Create the demo library for an organisation (published; idempotent by title)."""
    rng = random.Random(seed)  # noqa: S311 - demo dates, not secrets
    now = utc_now()
    made: list[em.ContentItem] = []
    for _key, prefixes, stage, level, kind, texts, link in ITEMS:
        for language, (title, body) in texts.items():
            item, _created = em.ContentItem.objects.get_or_create(
                organisation=org,
                title=title,
                defaults={
                    "kind": kind,
                    "body": body,
                    "video_url": link,
                    "icd10_prefixes": prefixes,
                    "stage": stage,
                    "language": language,
                    "reading_level": level,
                    "status": em.ContentItem.Status.PUBLISHED,
                    "published_at": now - timedelta(days=rng.randint(20, 90)),
                },
            )
            made.append(item)
    return made
