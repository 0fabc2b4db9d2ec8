# The per-address limit counts mailboxes (the address without its +tag).

from django.db import migrations, models


def fill_mailbox(apps, schema_editor):
    """Recorded queries count towards the limit by mailbox too (limits.mailbox_of)."""
    Query = apps.get_model("queries", "Query")
    for query in Query.objects.filter(mailbox="").only("id", "address").iterator():
        local, _at, domain = query.address.rpartition("@")
        mailbox = f"{local.split('+', 1)[0] or local}@{domain}"
        Query.objects.filter(id=query.id).update(mailbox=mailbox)


class Migration(migrations.Migration):

    dependencies = [
        ("queries", "0002_send_claims"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="query",
            name="query_address_created",
        ),
        migrations.AddField(
            model_name="query",
            name="mailbox",
            field=models.CharField(
                blank=True, editable=False, max_length=320, verbose_name="mailbox"
            ),
        ),
        migrations.RunPython(fill_mailbox, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="query",
            index=models.Index(fields=["mailbox", "created"], name="query_mailbox_created"),
        ),
    ]
