"""The record can be created and found through the service layer."""

from careloop.patients import selectors


class TestSmoke:
    def test_create_and_find_by_phone_tail(self, world, make_patient):
        p = make_patient(phones=["13912345678"])
        page = selectors.search_patients(world.actor("nurse.cardiology"),
                                         selectors.Criteria(q="5678"))
        assert [x.pk for x in page.items] == [p.pk]
