"""One module per FHIR resource type: a ``Mapper`` registered in ``careloop.fhir.registry``."""
