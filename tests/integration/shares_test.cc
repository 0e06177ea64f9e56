// db/shares.h against a real PostgreSQL: who may enter a VM.
#include "db/accounts.h"
#include "db/shares.h"
#include "db/vms.h"
#include "tests/integration/fixture.h"

namespace {

class SharesTest : public itest::DbTest {
 protected:
  int64_t Account(pqxx::work& tx, const std::string& name) { return db::CreateAccount(tx, name, {2, 2048, 20, 4}); }
  int64_t Vm(pqxx::work& tx, int64_t account, const std::string& name) {
    db::Vm v;
    v.account_id = account;
    v.name = name;
    v.image = "tiny";
    v.cpus = 1;
    v.memory_mib = 512;
    v.disk_gib = 1;
    return db::InsertVm(tx, v);
  }
};

TEST_F(SharesTest, OwnerAndAllowedAccountsMayEnterOthersMayNot) {
  auto conn = pool_->Acquire();
  pqxx::work tx(*conn);
  int64_t alice = Account(tx, "alice"), bob = Account(tx, "bob"), carol = Account(tx, "carol");
  int64_t vm = Vm(tx, alice, "box");
  EXPECT_TRUE(db::MayEnter(tx, vm, alice));
  EXPECT_FALSE(db::MayEnter(tx, vm, bob));
  EXPECT_TRUE(db::SetSshAccess(tx, vm, bob, true));
  EXPECT_FALSE(db::SetSshAccess(tx, vm, bob, true)) << "allowing twice changes nothing";
  EXPECT_TRUE(db::MayEnter(tx, vm, bob));
  EXPECT_FALSE(db::MayEnter(tx, vm, carol));
  auto shares = db::ListShares(tx, vm);
  ASSERT_EQ(shares.size(), 1u);
  EXPECT_EQ(shares[0].account, "bob");
  EXPECT_TRUE(shares[0].ssh);
  EXPECT_FALSE(shares[0].web);
  EXPECT_TRUE(db::SetSshAccess(tx, vm, bob, false));
  EXPECT_FALSE(db::SetSshAccess(tx, vm, bob, false));
  EXPECT_FALSE(db::MayEnter(tx, vm, bob));
  EXPECT_TRUE(db::ListShares(tx, vm).empty()) << "a share with no access left is deleted";
}

TEST_F(SharesTest, RemovingTheVmRemovesItsShares) {
  auto conn = pool_->Acquire();
  pqxx::work tx(*conn);
  int64_t alice = Account(tx, "alice"), bob = Account(tx, "bob");
  int64_t vm = Vm(tx, alice, "box");
  db::SetSshAccess(tx, vm, bob, true);
  db::DeleteVm(tx, vm);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM vm_shares")[0].as<int>(), 0);
  // A new VM of the same name is not shared with anyone.
  int64_t again = Vm(tx, alice, "box");
  EXPECT_FALSE(db::MayEnter(tx, again, bob));
}

}  // namespace
