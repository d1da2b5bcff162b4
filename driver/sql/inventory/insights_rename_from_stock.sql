-- After a rebuild of tenant $2's stock (model $1): each insight takes its
-- item's name from the rebuilt stock level, so a name that was personal
-- data of a forgotten subject is not kept in the insights either.
UPDATE forgeerp_inventory.ai_insights i
   SET name = e.value ->> 'name'
  FROM forgeerp_read.entries e
 WHERE e.model = $1 AND e.tenant_id = $2 AND e.key = i.item_id::text
   AND i.tenant_id = $2 AND i.name IS DISTINCT FROM e.value ->> 'name'
